package image

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Dockerfile is a parsed Dockerfile: its global ARGs and its stages, each a
// list of instructions with line numbers. Only the final stage is
// interpreted (Final); the others are kept so that a test can check what the
// build stage runs.
type Dockerfile struct {
	// GlobalArgs are the ARGs before the first FROM, in order.
	GlobalArgs []Instruction
	Stages     []Stage
}

// Stage is one FROM and the instructions that follow it.
type Stage struct {
	// From is the FROM instruction itself.
	From Instruction
	// Name is the stage's "AS name", lower case, or "".
	Name         string
	Instructions []Instruction
}

// Instruction is one Dockerfile instruction, continuation lines joined.
type Instruction struct {
	// Command is the instruction keyword in upper case: FROM, ARG, COPY, ...
	Command string
	// Args is everything after the keyword, continuation lines joined with
	// a space and comment lines inside them dropped, unexpanded.
	Args string
	// Line is the 1-based line where the instruction starts.
	Line int
}

// Spec is what the final stage of the Dockerfile says about the image, with
// build args and ARG defaults expanded: everything the Go builder needs to
// produce the same image as `docker buildx build`.
type Spec struct {
	// Base is the final stage's FROM reference.
	Base string
	// Binary is the absolute path the build stage's binary is copied to.
	Binary string
	// BinaryUID, BinaryGID and BinaryMode are the owner and mode of Binary:
	// 0:0 and 0755 (go build's output mode) unless COPY says --chown or --chmod.
	BinaryUID, BinaryGID int
	BinaryMode           int64
	// CopyFrom is the stage (or image) COPY --from names.
	CopyFrom string
	// CopySource is the path COPY copies from in that stage.
	CopySource string
	User       string
	WorkingDir string
	Entrypoint []string
	Cmd        []string
	// Env is the final stage's ENV, as KEY=value, in order.
	Env    []string
	Labels map[string]string
}

// ParseDockerfile splits a Dockerfile into its global ARGs and stages. It
// understands line continuations and comments (a leading "# syntax=" or
// "# escape=" directive is a comment here: only the backslash escape is
// supported) but not heredocs.
func ParseDockerfile(r io.Reader) (*Dockerfile, error) {
	df := &Dockerfile{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	var (
		cur     strings.Builder
		start   int
		lineNo  int
		pending bool
	)
	flush := func() error {
		if !pending {
			return nil
		}
		pending = false
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args := text, ""
		if i := strings.IndexAny(text, " \t"); i >= 0 {
			cmd, args = text[:i], text[i+1:]
		}
		if heredoc.MatchString(args) {
			return fmt.Errorf("dockerfile:%d: %s: heredocs are not supported", start, cmd)
		}
		in := Instruction{Command: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		switch {
		case in.Command == "FROM":
			st, err := newStage(in)
			if err != nil {
				return err
			}
			df.Stages = append(df.Stages, st)
		case len(df.Stages) == 0:
			if in.Command != "ARG" {
				return fmt.Errorf("dockerfile:%d: %s before the first FROM (only ARG may come first)", in.Line, in.Command)
			}
			df.GlobalArgs = append(df.GlobalArgs, in)
		default:
			last := &df.Stages[len(df.Stages)-1]
			last.Instructions = append(last.Instructions, in)
		}
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			// A comment, also inside a continued instruction, where
			// Docker drops it too.
			continue
		}
		if !pending {
			if trimmed == "" {
				continue
			}
			pending, start = true, lineNo
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dockerfile: read: %w", err)
	}
	if pending {
		return nil, fmt.Errorf("dockerfile:%d: the last instruction ends with a line continuation", start)
	}
	if len(df.Stages) == 0 {
		return nil, fmt.Errorf("dockerfile: no FROM")
	}
	return df, nil
}

func newStage(in Instruction) (Stage, error) {
	f := strings.Fields(in.Args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		f = f[1:] // --platform=...: the Go builder picks platforms itself
	}
	st := Stage{From: in}
	switch {
	case len(f) == 1:
	case len(f) == 3 && strings.EqualFold(f[1], "AS"):
		st.Name = strings.ToLower(f[2])
	default:
		return st, fmt.Errorf("dockerfile:%d: FROM %s: want FROM [--platform=...] image [AS name]", in.Line, in.Args)
	}
	return st, nil
}

// Stage returns the stage called name, or nil.
func (df *Dockerfile) Stage(name string) *Stage {
	if name == "" {
		return nil
	}
	for i := range df.Stages {
		if df.Stages[i].Name == strings.ToLower(name) {
			return &df.Stages[i]
		}
	}
	return nil
}

// Final interprets the last stage with buildArgs (a --build-arg for each
// key) and returns what it says about the image. It fails on any
// instruction it cannot reproduce (RUN, ADD, a second COPY, a shell-form
// ENTRYPOINT, ...), so a change to the Dockerfile that the Go builder would
// silently ignore breaks the build instead.
func (df *Dockerfile) Final(buildArgs map[string]string) (Spec, error) {
	spec := Spec{Labels: map[string]string{}, BinaryMode: 0o755}

	global := map[string]string{}
	for _, in := range df.GlobalArgs {
		if err := declareArg(in, global, global, buildArgs); err != nil {
			return spec, err
		}
	}
	st := df.Stages[len(df.Stages)-1]
	from := strings.Fields(st.From.Args)
	for len(from) > 0 && strings.HasPrefix(from[0], "--") {
		from = from[1:]
	}
	base, err := expand(from[0], global)
	if err != nil {
		return spec, fmt.Errorf("dockerfile:%d: FROM: %w", st.From.Line, err)
	}
	if df.Stage(base) != nil && !strings.Contains(base, "/") && !strings.Contains(base, ":") {
		return spec, fmt.Errorf("dockerfile:%d: FROM %s: the final stage must start from an image, not a stage", st.From.Line, base)
	}
	spec.Base = base

	// Inside a stage only ARGs it declares are in scope (global ones need
	// a bare ARG NAME to come in), plus its ENVs.
	vars := map[string]string{}
	var sawEntrypoint, sawCmd, sawCopy bool
	for _, in := range st.Instructions {
		where := fmt.Sprintf("dockerfile:%d: %s", in.Line, in.Command)
		switch in.Command {
		case "ARG":
			if err := declareArg(in, vars, global, buildArgs); err != nil {
				return spec, err
			}
		case "ENV", "LABEL":
			kv, err := pairs(in.Args, vars)
			if err != nil {
				return spec, fmt.Errorf("%s: %w", where, err)
			}
			for _, p := range kv {
				if in.Command == "LABEL" {
					spec.Labels[p[0]] = p[1]
					continue
				}
				vars[p[0]] = p[1]
				spec.Env = setEnv(spec.Env, p[0], p[1])
			}
		case "COPY":
			if sawCopy {
				return spec, fmt.Errorf("%s: a second COPY: the Go builder copies exactly one file, the binary", where)
			}
			sawCopy = true
			if err := parseCopy(in.Args, vars, &spec); err != nil {
				return spec, fmt.Errorf("%s: %w", where, err)
			}
		case "USER", "WORKDIR":
			w, err := words(in.Args, vars)
			if err != nil {
				return spec, fmt.Errorf("%s: %w", where, err)
			}
			if len(w) != 1 {
				return spec, fmt.Errorf("%s: want one value, got %d", where, len(w))
			}
			if in.Command == "USER" {
				spec.User = w[0]
			} else if path.IsAbs(w[0]) {
				spec.WorkingDir = path.Clean(w[0])
			} else {
				spec.WorkingDir = path.Join("/", spec.WorkingDir, w[0])
			}
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(in.Args), &argv); err != nil {
				return spec, fmt.Errorf("%s: want the exec form, a JSON array of strings (the shell form needs /bin/sh, which the image does not have): %w", where, err)
			}
			if in.Command == "ENTRYPOINT" {
				spec.Entrypoint, sawEntrypoint = argv, true
				if !sawCmd {
					// ENTRYPOINT resets the CMD inherited from the base.
					spec.Cmd = nil
				}
			} else {
				spec.Cmd, sawCmd = argv, true
			}
		default:
			return spec, fmt.Errorf("%s: not supported in the final stage by the Go image builder (internal/image); build with `make image-docker` or teach the builder", where)
		}
	}
	if !sawCopy {
		return spec, fmt.Errorf("dockerfile: the final stage has no COPY of the binary")
	}
	if !sawEntrypoint {
		return spec, fmt.Errorf("dockerfile: the final stage has no ENTRYPOINT")
	}
	return spec, nil
}

// declareArg handles ARG NAME[=default] into scope: the build arg if given,
// else the default, else (in a stage) the global value.
func declareArg(in Instruction, scope, global, buildArgs map[string]string) error {
	ws, err := words(in.Args, scope)
	if err != nil {
		return fmt.Errorf("dockerfile:%d: ARG: %w", in.Line, err)
	}
	for _, w := range ws {
		name, def, hasDef := strings.Cut(w, "=")
		if !validName.MatchString(name) {
			return fmt.Errorf("dockerfile:%d: ARG %q: not a valid name", in.Line, name)
		}
		if !hasDef {
			if g, ok := global[name]; ok {
				def, hasDef = g, true
			}
		}
		if v, ok := buildArgs[name]; ok {
			scope[name] = v
		} else if hasDef {
			scope[name] = def
		} else {
			scope[name] = ""
		}
	}
	return nil
}

var (
	validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// heredoc is "<<WORD", "<<-WORD" or "<<'WORD'" at the start of a word:
	// the lines after it would be read as instructions.
	heredoc = regexp.MustCompile(`(^|\s)<<-?["']?[A-Za-z_]`)
)

func parseCopy(args string, vars map[string]string, spec *Spec) error {
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		switch k {
		case "from":
			spec.CopyFrom = v
		case "chown":
			u, g, ok := strings.Cut(v, ":")
			if !ok {
				g = u
			}
			uid, err1 := strconv.Atoi(u)
			gid, err2 := strconv.Atoi(g)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("--chown=%s: only numeric uid:gid is supported", v)
			}
			spec.BinaryUID, spec.BinaryGID = uid, gid
		case "chmod":
			m, err := strconv.ParseInt(v, 8, 32)
			if err != nil {
				return fmt.Errorf("--chmod=%s: want an octal mode: %w", v, err)
			}
			spec.BinaryMode = m
		case "link":
			// Layer placement only; the result is the same file.
		default:
			return fmt.Errorf("flag --%s is not supported", k)
		}
		f = f[1:]
	}
	if spec.CopyFrom == "" {
		return fmt.Errorf("want COPY --from=<build stage> <binary> <destination>")
	}
	rest := strings.Join(f, " ")
	var w []string
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &w); err != nil {
			return fmt.Errorf("exec form: %w", err)
		}
		for i := range w {
			var err error
			if w[i], err = expand(w[i], vars); err != nil {
				return err
			}
		}
	} else {
		var err error
		if w, err = words(rest, vars); err != nil {
			return err
		}
	}
	if len(w) != 2 {
		return fmt.Errorf("want exactly one source and a destination, got %q", w)
	}
	src, dst := w[0], w[1]
	if strings.ContainsAny(src, "*?[") {
		return fmt.Errorf("source %q: wildcards are not supported", src)
	}
	if strings.HasSuffix(dst, "/") {
		dst += path.Base(src)
	}
	if !path.IsAbs(dst) {
		return fmt.Errorf("destination %q: want an absolute path", dst)
	}
	spec.CopySource, spec.Binary = src, path.Clean(dst)
	return nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// pairs splits LABEL or ENV arguments into key/value pairs: key=value words,
// or the legacy "KEY value" form with one pair.
func pairs(args string, vars map[string]string) ([][2]string, error) {
	first, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
	if !strings.Contains(first, "=") {
		v, err := words(rest, vars)
		if err != nil {
			return nil, err
		}
		k, err := words(first, vars)
		if err != nil || len(k) != 1 {
			return nil, fmt.Errorf("key %q: %v", first, err)
		}
		return [][2]string{{k[0], strings.Join(v, " ")}}, nil
	}
	w, err := words(args, vars)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(w))
	for _, x := range w {
		k, v, ok := strings.Cut(x, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", x)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// words splits s into words the way Docker's shell lexer does for LABEL,
// ENV, USER, WORKDIR and COPY: whitespace separates, "double" quotes group
// and expand variables, 'single' quotes group literally, a backslash
// escapes the next character. $NAME and ${NAME} expand from vars; an
// undefined name is an error rather than Docker's silent empty string.
func words(s string, vars map[string]string) ([]string, error) {
	var (
		out    []string
		cur    strings.Builder
		inWord bool
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			}
		case c == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, fmt.Errorf("unterminated single quote in %q", s)
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
		case c == '"':
			inWord = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				switch {
				case rs[j] == '\\' && j+1 < len(rs) && (rs[j+1] == '"' || rs[j+1] == '\\' || rs[j+1] == '$'):
					j++
					cur.WriteRune(rs[j])
				case rs[j] == '$':
					n, v, err := variable(rs, j, vars)
					if err != nil {
						return nil, err
					}
					cur.WriteString(v)
					j = n - 1
				default:
					cur.WriteRune(rs[j])
				}
			}
			if j == len(rs) {
				return nil, fmt.Errorf("unterminated double quote in %q", s)
			}
			i = j
		case c == '$':
			inWord = true
			n, v, err := variable(rs, i, vars)
			if err != nil {
				return nil, err
			}
			cur.WriteString(v)
			i = n - 1
		default:
			inWord = true
			cur.WriteRune(c)
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// expand substitutes variables in a single word with no quoting.
func expand(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		if rs[i] != '$' {
			b.WriteRune(rs[i])
			continue
		}
		n, v, err := variable(rs, i, vars)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		i = n - 1
	}
	return b.String(), nil
}

// variable reads the reference starting at rs[i] == '$' and returns the
// index just past it and its value.
func variable(rs []rune, i int, vars map[string]string) (int, string, error) {
	j := i + 1
	var name string
	if j < len(rs) && rs[j] == '{' {
		k := j + 1
		for k < len(rs) && rs[k] != '}' {
			k++
		}
		if k == len(rs) {
			return 0, "", fmt.Errorf("unterminated ${ in %q", string(rs))
		}
		name = string(rs[j+1 : k])
		j = k + 1
	} else {
		k := j
		for k < len(rs) && (rs[k] == '_' || rs[k] >= 'a' && rs[k] <= 'z' || rs[k] >= 'A' && rs[k] <= 'Z' || rs[k] >= '0' && rs[k] <= '9') {
			k++
		}
		if k == j {
			return j, "$", nil // a lone $ is literal
		}
		name, j = string(rs[j:k]), k
	}
	if !validName.MatchString(name) {
		return 0, "", fmt.Errorf("${%s}: only plain $NAME and ${NAME} are supported", name)
	}
	v, ok := vars[name]
	if !ok {
		return 0, "", fmt.Errorf("$%s is not declared in the final stage (ARG or ENV)", name)
	}
	return j, v, nil
}
