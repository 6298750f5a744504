package policy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/openintern/openintern/tools"
)

// Names of the built-in defaults, in Verdict.Rule as "default:<name>".
const (
	DefaultShell          = "default:shell"
	DefaultWriteOutside   = "default:write_outside_scratch"
	DefaultFetchHost      = "default:fetch_host"
	DefaultMCPUnannotated = "default:mcp_unannotated"
	DefaultMCPDestructive = "default:mcp_destructive"
)

// defaults are the built-in rules for high-risk tools, consulted after every
// configured and stored rule.
type defaults struct {
	scratchDir string // "scratch": write_file/edit_file under it are allowed
	hosts      tools.HostAllowList
	hostList   []string
}

// describe lists the defaults in effect, for GET /api/policy.
func (d *defaults) describe() []string {
	hosts := "none"
	if len(d.hostList) > 0 {
		hosts = strings.Join(d.hostList, ", ")
	}
	return []string{
		DefaultShell + ": shell asks (it runs commands on the host)",
		fmt.Sprintf("%s: write_file and edit_file ask unless the path is under %s/", DefaultWriteOutside, d.scratchDir),
		fmt.Sprintf("%s: http_fetch asks unless the URL's host is allow-listed (%s)", DefaultFetchHost, hosts),
		DefaultMCPUnannotated + ": an MCP tool without annotations asks",
		DefaultMCPDestructive + ": an MCP tool asks unless its annotations say readOnlyHint or destructiveHint false (MCP's default for destructiveHint is true)",
	}
}

// decide applies the defaults; ok is false when none applies (the call is allowed).
func (d *defaults) decide(call tools.Call, info tools.ToolInfo) (tools.Verdict, bool) {
	ask := func(rule, reason string) (tools.Verdict, bool) {
		return tools.Verdict{Effect: tools.EffectAsk, Rule: rule, Reason: reason}, true
	}
	if info.MCP != nil {
		h := info.MCP
		switch {
		case !h.Annotated:
			return ask(DefaultMCPUnannotated, fmt.Sprintf("MCP tool %s gives no annotations, so it may change anything", call.Name))
		case isTrue(h.ReadOnly):
			return tools.Verdict{}, false
		case h.Destructive == nil || *h.Destructive:
			return ask(DefaultMCPDestructive, fmt.Sprintf("MCP tool %s may make destructive changes (its server says so, or does not say otherwise)", call.Name))
		}
		return tools.Verdict{}, false
	}
	switch call.Name {
	case "shell":
		return ask(DefaultShell, "shell runs a command on the host")
	case "write_file", "edit_file":
		var a struct {
			Path string `json:"path"`
		}
		_ = json.Unmarshal(call.Args, &a)
		rel, bad := tools.CheckPath(a.Path)
		if bad == "" && d.underScratch(rel) {
			return tools.Verdict{}, false
		}
		return ask(DefaultWriteOutside, fmt.Sprintf("%s writes %q, outside the scratch folder %s/", call.Name, a.Path, d.scratchDir))
	case "http_fetch":
		var a struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(call.Args, &a)
		u, err := url.Parse(a.URL)
		if err == nil && u.Host != "" && d.hosts.AllowsURL(u) {
			return tools.Verdict{}, false
		}
		host := a.URL
		if err == nil && u.Host != "" {
			host = u.Hostname()
		}
		return ask(DefaultFetchHost, fmt.Sprintf("http_fetch reaches %s, a host that is not allow-listed", host))
	}
	return tools.Verdict{}, false
}

// underScratch reports whether a cleaned workspace path is inside the
// scratch folder (the folder itself is not a file one can write).
func (d *defaults) underScratch(rel string) bool {
	return strings.HasPrefix(rel, d.scratchDir+"/")
}

func isTrue(b *bool) bool { return b != nil && *b }
