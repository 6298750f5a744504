package mcptools

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// summarize renders a tool result for the model: text as it is; images,
// audio and binary resources as one line saying what they are and how big
// (a model reading base64 learns nothing and pays for every byte); embedded
// text resources with their URI and text; resource links by URI. Structured
// content is shown only when there is no content (the spec asks servers to
// send both, equivalent).
func summarize(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		parts = append(parts, contentText(c))
	}
	if len(parts) == 0 {
		switch {
		case len(res.RawStructuredContent) > 0:
			parts = append(parts, string(res.RawStructuredContent))
		case res.StructuredContent != nil:
			if b, err := json.Marshal(res.StructuredContent); err == nil {
				parts = append(parts, string(b))
			}
		}
	}
	if len(parts) == 0 {
		return "(no content)"
	}
	return strings.Join(parts, "\n")
}

func contentText(c mcp.Content) string {
	switch v := c.(type) {
	case mcp.TextContent:
		return v.Text
	case *mcp.TextContent:
		return v.Text
	case mcp.ImageContent:
		return fmt.Sprintf("[image %s %s]", orUnknown(v.MIMEType), base64Size(v.Data))
	case *mcp.ImageContent:
		return fmt.Sprintf("[image %s %s]", orUnknown(v.MIMEType), base64Size(v.Data))
	case mcp.AudioContent:
		return fmt.Sprintf("[audio %s %s]", orUnknown(v.MIMEType), base64Size(v.Data))
	case *mcp.AudioContent:
		return fmt.Sprintf("[audio %s %s]", orUnknown(v.MIMEType), base64Size(v.Data))
	case mcp.ResourceLink:
		return resourceLinkText(v)
	case *mcp.ResourceLink:
		return resourceLinkText(*v)
	case mcp.EmbeddedResource:
		return resourceText(v.Resource)
	case *mcp.EmbeddedResource:
		return resourceText(v.Resource)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Sprintf("[content %T]", c)
	}
	return "[content " + string(b) + "]"
}

func resourceLinkText(l mcp.ResourceLink) string {
	s := "[resource " + l.URI
	if l.Name != "" {
		s += " " + l.Name
	}
	if l.MIMEType != "" {
		s += " " + l.MIMEType
	}
	return s + "]"
}

func resourceText(r mcp.ResourceContents) string {
	switch v := r.(type) {
	case mcp.TextResourceContents:
		return fmt.Sprintf("[resource %s %s]\n%s", v.URI, orUnknown(v.MIMEType), v.Text)
	case *mcp.TextResourceContents:
		return fmt.Sprintf("[resource %s %s]\n%s", v.URI, orUnknown(v.MIMEType), v.Text)
	case mcp.BlobResourceContents:
		return fmt.Sprintf("[resource %s %s %s]", v.URI, orUnknown(v.MIMEType), base64Size(v.Blob))
	case *mcp.BlobResourceContents:
		return fmt.Sprintf("[resource %s %s %s]", v.URI, orUnknown(v.MIMEType), base64Size(v.Blob))
	}
	return "[resource]"
}

func orUnknown(mime string) string {
	if mime == "" {
		return "unknown-type"
	}
	return mime
}

// base64Size is the decoded size of base64 data, for humans.
func base64Size(data string) string {
	n := base64.StdEncoding.DecodedLen(len(strings.TrimRight(data, "=")))
	if d, err := base64.StdEncoding.DecodeString(data); err == nil {
		n = len(d)
	}
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%d KB", (n+512)/1024)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}
