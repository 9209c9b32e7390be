package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// sizeRow is the bytes one module (or standard library tree) puts in the
// binary's text, read-only data and data.
type sizeRow struct {
	module string
	bytes  int64
}

// sizeTable groups the symbols of bin (built without -s, so it has them)
// by module, as `go tool nm -size -sort size` lists them, leaving out what
// takes no room in the file (.bss, .noptrbss). It returns the rows, largest
// first, and the file's size.
func sizeTable(bin string) ([]sizeRow, int64, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var nobits [][2]uint64
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS {
			nobits = append(nobits, [2]uint64{s.Addr, s.Addr + s.Size})
		}
	}
	mods, err := modules(bin)
	if err != nil {
		return nil, 0, err
	}
	out, err := exec.Command("go", "tool", "nm", "-size", "-sort", "size", bin).Output()
	if err != nil {
		return nil, 0, fmt.Errorf("go tool nm: %w", err)
	}
	sums := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || fs[2] == "U" || fs[2] == "B" || fs[2] == "b" {
			continue
		}
		addr, err1 := strconv.ParseUint(fs[0], 16, 64)
		size, err2 := strconv.ParseInt(fs[1], 10, 64)
		if err1 != nil || err2 != nil || inRanges(addr, nobits) {
			continue
		}
		sums[moduleOf(symbolPackage(strings.Join(fs[3:], " ")), mods)] += size
	}
	var rows []sizeRow
	for m, b := range sums {
		rows = append(rows, sizeRow{m, b})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].bytes > rows[j].bytes })
	st, err := os.Stat(bin)
	if err != nil {
		return nil, 0, err
	}
	return rows, st.Size(), nil
}

func inRanges(a uint64, rs [][2]uint64) bool {
	for _, r := range rs {
		if a >= r[0] && a < r[1] {
			return true
		}
	}
	return false
}

// modules lists the main module and the dependencies of bin, longest path
// first, from its build information.
func modules(bin string) ([]string, error) {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("go version -m: %w", err)
	}
	var mods []string
	for line := range strings.SplitSeq(string(out), "\n") {
		fs := strings.Fields(line)
		if len(fs) >= 2 && (fs[0] == "mod" || fs[0] == "dep") {
			mods = append(mods, fs[1])
		}
	}
	slices.SortFunc(mods, func(a, b string) int { return len(b) - len(a) })
	return mods, nil
}

// symbolPackage is the import path of the package a symbol belongs to;
// runtime tables without one ("go:func.*", "go:string.*") are "go:".
func symbolPackage(sym string) string {
	sym = strings.TrimPrefix(sym, "type:")
	sym = strings.TrimPrefix(sym, "go:itab.")
	sym = strings.TrimLeft(sym, "*")
	if strings.HasPrefix(sym, "go:") || strings.HasPrefix(sym, "go.") {
		return "go:"
	}
	if i := strings.IndexAny(sym, "[("); i >= 0 {
		sym = sym[:i]
	}
	slash := strings.LastIndex(sym, "/")
	if dot := strings.Index(sym[slash+1:], "."); dot >= 0 {
		return sym[:slash+1+dot]
	}
	return sym
}

// moduleOf names the module of pkg; the standard library is grouped by its
// top-level package ("std: crypto").
func moduleOf(pkg string, mods []string) string {
	if pkg == "go:" {
		return "runtime tables (closures, strings, type data)"
	}
	for _, m := range mods {
		if pkg == m || strings.HasPrefix(pkg, m+"/") {
			return m
		}
	}
	if strings.HasPrefix(pkg, "vendor/") {
		return "std: vendor (golang.org/x copies)"
	}
	first, _, _ := strings.Cut(pkg, "/")
	return "std: " + first
}
