package config

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Limits on hostile input. A config is a few kilobytes written by a person
// (the full platform example is under 5 KB); each limit is orders of
// magnitude above that, and low enough that loading the worst document
// within it stays well under a second.
const (
	// MaxFileSize is the largest config accepted, as read and after
	// ${VAR} expansion: what a Kubernetes ConfigMap can hold, so any
	// config the chart can deliver fits, and 200 times the full example.
	// YAML parses at a few MB/s; within this size the slowest document
	// still loads in well under a second.
	MaxFileSize = 1 << 20
	// MaxAliasNodes is how many YAML nodes aliases may add to the document
	// once every alias is followed. Anchors share a block a few times (a
	// set of grants, queue arguments); a billion-laughs document asks for
	// billions, and everything after parsing (the field walker, the
	// decoder, validation) pays for each one.
	MaxAliasNodes = 100_000
	// MaxMappingKeys is the most keys one mapping may have. The decoder
	// compares every key of a mapping with every other one, so a wide
	// mapping costs its width squared; the widest real mapping (a
	// Kubernetes Secret's data, a policy definition) has tens of keys.
	MaxMappingKeys = 1000
)

// readFile reads a config file, refusing one over MaxFileSize without
// reading the rest of it (a device or a runaway generator never ends).
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, Problems{{Path: path, Reason: fmt.Sprintf("file is larger than %s, the limit for a config file", mib(MaxFileSize))}}
	}
	return data, nil
}

func mib(n int) string { return strconv.Itoa(n>>20) + " MiB" }

// tooBig reports a config over MaxFileSize; stage says where it grew.
func tooBig(data []byte, stage string) Problems {
	if len(data) <= MaxFileSize {
		return nil
	}
	return Problems{{Reason: fmt.Sprintf("config is %d bytes%s, over the %s limit", len(data), stage, mib(MaxFileSize))}}
}

// guard looks at the parsed document before anything follows its aliases
// or decodes it, and reports what would make that work explode: aliases
// that expand past MaxAliasNodes (the billion laughs, with anchors nested
// in lists, sequences fanned out, mappings merged with <<), an alias that
// contains itself, a mapping wider than MaxMappingKeys, and duplicate keys
// (which the decoder reports once per pair: n² lines for one key written n
// times). It visits each written node once and sizes each anchor once, so
// its own cost follows the file's size, not the expansion.
type guard struct {
	written int                 // nodes walked so far, as written
	used    int                 // nodes added by the aliases seen so far
	size    map[*yaml.Node]int  // expanded size of anchored nodes, once known
	sizing  map[*yaml.Node]bool // anchored nodes being sized: an alias to one is a cycle
	path    []segment           // where the walk is, rendered only for a problem
	ps      Problems
	stop    bool // a limit was hit: the rest of the walk is moot
}

// segment is one step of a field path: a mapping key or a list index.
type segment struct {
	key   string
	index int
	isKey bool
}

// cycle is the size of a node that contains an alias to itself.
const cycle = -1

func guardDocument(doc *yaml.Node) Problems {
	g := &guard{size: map[*yaml.Node]int{}, sizing: map[*yaml.Node]bool{}}
	g.walk(doc)
	return g.ps
}

func (g *guard) at() string {
	var p string
	for _, s := range g.path {
		if s.isKey {
			p = join(p, s.key)
		} else {
			p += "[" + strconv.Itoa(s.index) + "]"
		}
	}
	return p
}

func (g *guard) add(line int, format string, args ...any) {
	p := g.at()
	if p == "" {
		p = fmt.Sprintf("line %d", line)
	}
	g.ps.add(p, format, args...)
}

// walk visits the nodes as written; an alias is not followed but sized.
func (g *guard) walk(n *yaml.Node) {
	g.written++
	switch n.Kind {
	case yaml.AliasNode:
		g.alias(n)
	case yaml.MappingNode:
		if k := len(n.Content) / 2; k > MaxMappingKeys {
			g.add(n.Line, "mapping has %d keys (line %d), more than the %d allowed", k, n.Line, MaxMappingKeys)
			g.stop = true
			return
		}
		g.duplicates(n)
		for i := 0; i+1 < len(n.Content) && !g.stop; i += 2 {
			g.path = append(g.path, segment{key: n.Content[i].Value, isKey: true})
			g.walk(n.Content[i])
			if !g.stop {
				g.walk(n.Content[i+1])
			}
			g.path = g.path[:len(g.path)-1]
		}
	default: // document, sequence, scalar
		for i, c := range n.Content {
			if g.stop {
				return
			}
			if n.Kind == yaml.SequenceNode {
				g.path = append(g.path, segment{index: i})
			}
			g.walk(c)
			if n.Kind == yaml.SequenceNode {
				g.path = g.path[:len(g.path)-1]
			}
		}
	}
}

// alias adds what an alias expands to and stops the walk at the first
// alias that contains itself, takes the document past MaxAliasNodes, or
// makes it almost all aliases: the decoder refuses a document more than
// 99% of whose nodes come from aliases ("excessive aliasing", once more
// than 100 do and 1000 are decoded), without saying where; the same rule
// here names the alias.
func (g *guard) alias(n *yaml.Node) {
	s := g.expanded(n)
	if s == cycle {
		g.add(n.Line, "alias *%s (line %d) refers to a node that contains it", n.Value, n.Line)
		g.stop = true
		return
	}
	g.used += s - 1 // the alias itself was walked as written
	total := g.written + g.used
	switch {
	case g.used > MaxAliasNodes:
		g.add(n.Line, "alias *%s (line %d) takes the document past %d nodes once aliases are expanded; "+
			"anchors share a few blocks, a config never needs this many (a YAML alias bomb?)", n.Value, n.Line, MaxAliasNodes)
		g.stop = true
	case g.used > 100 && total > 1000 && float64(g.used) > 0.99*float64(total):
		g.add(n.Line, "alias *%s (line %d) makes aliases %d of the document's %d nodes; "+
			"a document made almost only of aliases is refused (a YAML alias bomb?)", n.Value, n.Line, g.used, total)
		g.stop = true
	}
}

// expanded is the number of nodes n stands for with every alias in it
// followed (an alias counts itself and its anchor's expansion, as the
// decoder counts them), saturated just past MaxAliasNodes, or cycle. An
// anchored node is sized once, so nested anchors cost their written size,
// not their expansion.
func (g *guard) expanded(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode {
		s := g.expanded(n.Alias)
		if s == cycle {
			return cycle
		}
		return min(s+1, MaxAliasNodes+1)
	}
	if s, ok := g.size[n]; ok {
		return s
	}
	if g.sizing[n] {
		return cycle
	}
	anchored := n.Anchor != ""
	if anchored {
		g.sizing[n] = true
	}
	s := 1
	for _, c := range n.Content {
		cs := g.expanded(c)
		if cs == cycle {
			s = cycle
			break
		}
		s = min(s+cs, MaxAliasNodes+1)
	}
	if anchored {
		delete(g.sizing, n)
		g.size[n] = s
	}
	return s
}

// duplicates reports each key written more than once in mapping n, once,
// with the lines of its first two occurrences. Keys compare as the decoder
// compares them: by kind and text.
func (g *guard) duplicates(n *yaml.Node) {
	type seen struct {
		first, again *yaml.Node
		times        int
	}
	var keys map[string]*seen
	var order []string
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		id := strconv.Itoa(int(k.Kind)) + ":" + k.Value
		if keys == nil {
			keys = make(map[string]*seen, len(n.Content)/2)
		}
		s := keys[id]
		if s == nil {
			keys[id] = &seen{first: k, times: 1}
			continue
		}
		if s.times == 1 {
			s.again = k
			order = append(order, id)
		}
		s.times++
	}
	for _, id := range order {
		s := keys[id]
		times := ""
		if s.times > 2 {
			times = fmt.Sprintf(", %d times in all", s.times)
		}
		g.path = append(g.path, segment{key: s.first.Value, isKey: true})
		g.add(s.again.Line, "duplicate key: first at line %d, again at line %d%s", s.first.Line, s.again.Line, times)
		g.path = g.path[:len(g.path)-1]
	}
}
