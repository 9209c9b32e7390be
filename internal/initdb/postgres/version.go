package postgres

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// serverMajor is the major version of the server conn talks to, from the
// server_version it reports when the session starts (no round trip); 0
// when it cannot be read.
func serverMajor(conn *pgx.Conn) int {
	return parseMajor(conn.PgConn().ParameterStatus("server_version"))
}

// parseMajor reads the major version from a server_version such as
// "15.10 (Debian 15.10-0+deb12u1)", "17.10" or "18beta1"; 0 if none.
func parseMajor(v string) int {
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(v)
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}
