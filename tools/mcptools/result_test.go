package mcptools

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// TestSummarize: text as is; images, audio and blobs as one line with their
// type and decoded size; resources with their URI; structured content only
// when there is no content.
func TestSummarize(t *testing.T) {
	img := base64.StdEncoding.EncodeToString(make([]byte, 12*1024))
	res := &mcp.CallToolResult{Content: []mcp.Content{
		mcp.NewTextContent("first"),
		mcp.NewImageContent(img, "image/png"),
		mcp.NewAudioContent(base64.StdEncoding.EncodeToString([]byte("abc")), "audio/wav"),
		mcp.NewEmbeddedResource(mcp.TextResourceContents{URI: "file:///a.txt", MIMEType: "text/plain", Text: "inside"}),
		mcp.NewEmbeddedResource(mcp.BlobResourceContents{URI: "file:///b.bin", MIMEType: "application/octet-stream", Blob: img}),
		mcp.NewResourceLink("file:///c.md", "c.md", "a file", "text/markdown"),
	}}
	got := summarize(res)
	want := strings.Join([]string{
		"first",
		"[image image/png 12 KB]",
		"[audio audio/wav 3 B]",
		"[resource file:///a.txt text/plain]\ninside",
		"[resource file:///b.bin application/octet-stream 12 KB]",
		"[resource file:///c.md c.md text/markdown]",
	}, "\n")
	if got != want {
		t.Fatalf("summarize:\n%s\nwant:\n%s", got, want)
	}
	if s := summarize(&mcp.CallToolResult{StructuredContent: map[string]any{"sum": 3}}); s != `{"sum":3}` {
		t.Fatalf("structured only: %q", s)
	}
	if s := summarize(&mcp.CallToolResult{}); s != "(no content)" {
		t.Fatalf("empty: %q", s)
	}
	if strings.Contains(got, img[:40]) {
		t.Fatal("base64 data reached the model")
	}
}
