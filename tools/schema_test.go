package tools

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustCompile(t *testing.T, raw string) *Schema {
	t.Helper()
	s, err := CompileSchema(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("CompileSchema(%s): %v", raw, err)
	}
	return s
}

func TestCompileSchemaRejects(t *testing.T) {
	cases := []struct {
		name, schema, want string
	}{
		{"invalid json", `{"type":`, "not valid JSON"},
		{"not an object", `[1]`, "must be an object, got array"},
		{"unsupported keyword", `{"type":"string","pattern":"^a"}`, `unsupported keyword "pattern"`},
		{"nested unsupported keyword", `{"type":"object","properties":{"a":{"oneOf":[]}}}`, `schema at properties.a: unsupported keyword "oneOf"`},
		{"unknown type", `{"type":"strin"}`, `unsupported type "strin"`},
		{"type list", `{"type":["string","null"]}`, "type lists are not supported"},
		{"negative minLength", `{"type":"string","minLength":-1}`, `"minLength" must be a non-negative integer`},
		{"fractional maxItems", `{"type":"array","maxItems":1.5}`, `"maxItems" must be a non-negative integer`},
		{"minimum not a number", `{"type":"integer","minimum":"1"}`, `"minimum" must be a number`},
		{"empty enum", `{"enum":[]}`, `"enum" must be a non-empty array`},
		{"required not strings", `{"type":"object","required":[1]}`, `"required" must be an array of strings`},
		{"required missing under additionalProperties false", `{"type":"object","properties":{"a":{}},"required":["b"],"additionalProperties":false}`, `required property "b" is not in properties`},
		{"bad items", `{"type":"array","items":3}`, "schema at items: must be an object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := CompileSchema(json.RawMessage(c.schema))
			if err == nil {
				t.Fatalf("CompileSchema(%s) succeeded, want error containing %q", c.schema, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestCompileSchemaAcceptsAnnotations(t *testing.T) {
	s := mustCompile(t, `{"$schema":"x","title":"t","description":"d","type":"object",
		"properties":{"when":{"type":"string","format":"date-time","default":"now","examples":["x"]}}}`)
	if s.Type() != "object" {
		t.Fatalf("Type() = %q, want object", s.Type())
	}
	if err := s.ValidateJSON([]byte(`{"when":"later"}`)); err != nil {
		t.Fatalf("annotations must not constrain: %v", err)
	}
}

const testSchema = `{
  "type": "object",
  "properties": {
    "path":   {"type": "string", "minLength": 1, "maxLength": 5},
    "offset": {"type": "integer", "minimum": 1, "maximum": 100},
    "ratio":  {"type": "number", "minimum": 0, "maximum": 1},
    "format": {"type": "string", "enum": ["json", "jsonl"]},
    "flag":   {"type": "boolean"},
    "none":   {"type": "null"},
    "tags":   {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    "opts":   {"type": "object", "properties": {"depth": {"type": "integer"}}, "required": ["depth"]},
    "any":    {}
  },
  "required": ["path"],
  "additionalProperties": false
}`

func TestValidate(t *testing.T) {
	s := mustCompile(t, testSchema)
	cases := []struct {
		name string
		args string
		want string // "" = valid
	}{
		{"minimal", `{"path":"a"}`, ""},
		{"everything", `{"path":"héllo","offset":100,"ratio":0.5,"format":"jsonl","flag":false,"none":null,"tags":["x","y"],"opts":{"depth":2},"any":[1,{"b":null}]}`, ""},
		{"required", `{}`, `argument "path": required`},
		{"root type", `[1]`, `arguments: must be an object, got array`},
		{"root null", `null`, `arguments: must be an object, got null`},
		{"string type", `{"path":3}`, `argument "path": must be a string, got number 3`},
		{"empty string", `{"path":""}`, `argument "path": must not be empty`},
		{"too long in runes", `{"path":"héllo!"}`, `argument "path": must be at most 5 characters long, got 6`},
		{"integer type", `{"path":"a","offset":"2"}`, `argument "offset": must be an integer, got string`},
		{"fraction is not integer", `{"path":"a","offset":1.5}`, `argument "offset": must be an integer, got number 1.5`},
		{"3.0 is not integer", `{"path":"a","offset":3.0}`, `argument "offset": must be an integer, got number 3.0`},
		{"exponent is not integer", `{"path":"a","offset":1e2}`, `argument "offset": must be an integer, got number 1e2`},
		{"integer out of range", `{"path":"a","offset":99999999999999999999}`, `argument "offset": integer 99999999999999999999 is out of range`},
		{"minimum", `{"path":"a","offset":0}`, `argument "offset": must be >= 1, got 0`},
		{"maximum", `{"path":"a","offset":101}`, `argument "offset": must be <= 100, got 101`},
		{"number maximum", `{"path":"a","ratio":1.01}`, `argument "ratio": must be <= 1, got 1.01`},
		{"number type", `{"path":"a","ratio":true}`, `argument "ratio": must be a number, got boolean`},
		{"enum", `{"path":"a","format":"xml"}`, `argument "format": must be one of "json", "jsonl"; got "xml"`},
		{"boolean", `{"path":"a","flag":"yes"}`, `argument "flag": must be a boolean, got string`},
		{"null", `{"path":"a","none":0}`, `argument "none": must be null, got number 0`},
		{"array type", `{"path":"a","tags":"x"}`, `argument "tags": must be an array, got string`},
		{"items path", `{"path":"a","tags":["x",3]}`, `argument "tags[1]": must be a string, got number 3`},
		{"minItems", `{"path":"a","tags":[]}`, `argument "tags": must have at least 1 items, got 0`},
		{"maxItems", `{"path":"a","tags":["a","b","c","d"]}`, `argument "tags": must have at most 3 items, got 4`},
		{"nested required", `{"path":"a","opts":{}}`, `argument "opts.depth": required`},
		{"nested type", `{"path":"a","opts":{"depth":"deep"}}`, `argument "opts.depth": must be an integer, got string`},
		{"additional property", `{"path":"a","paht":"b"}`, `argument "paht": unknown property; allowed: any, flag, format, none, offset, opts, path, ratio, tags`},
		{"several, in order", `{"offset":0,"flag":1}`, `argument "path": required; argument "flag": must be a boolean, got number 1; argument "offset": must be >= 1, got 0`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.ValidateJSON([]byte(c.args))
			if c.want == "" {
				if err != nil {
					t.Fatalf("ValidateJSON(%s) = %v, want nil", c.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateJSON(%s) = nil, want %q", c.args, c.want)
			}
			if err.Error() != c.want {
				t.Fatalf("ValidateJSON(%s)\n got: %s\nwant: %s", c.args, err, c.want)
			}
			var ve ValidationErrors
			if !errors.As(err, &ve) || len(ve) == 0 {
				t.Fatalf("error %T is not ValidationErrors", err)
			}
		})
	}
}

func TestValidationErrorFields(t *testing.T) {
	s := mustCompile(t, testSchema)
	err := s.ValidateJSON([]byte(`{"path":"a","tags":["x",3]}`))
	var ve ValidationErrors
	if !errors.As(err, &ve) || len(ve) != 1 {
		t.Fatalf("got %v, want one ValidationError", err)
	}
	if ve[0].Path != "tags[1]" || ve[0].Message != "must be a string, got number 3" {
		t.Fatalf("got Path=%q Message=%q", ve[0].Path, ve[0].Message)
	}
}

func TestValidateBoundsErrorCount(t *testing.T) {
	s := mustCompile(t, `{"type":"array","items":{"type":"string"}}`)
	err := s.ValidateJSON([]byte(`[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]`))
	var ve ValidationErrors
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	if len(ve) != maxValidationErrors {
		t.Fatalf("got %d errors, want %d", len(ve), maxValidationErrors)
	}
	if ve[0].Path != "[0]" {
		t.Fatalf("first path %q, want [0]", ve[0].Path)
	}
}

func TestValidateAdditionalPropertiesSchema(t *testing.T) {
	s := mustCompile(t, `{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"integer"}}`)
	if err := s.ValidateJSON([]byte(`{"a":"x","b":1,"c":2}`)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	err := s.ValidateJSON([]byte(`{"a":"x","b":"no"}`))
	if err == nil || err.Error() != `argument "b": must be an integer, got string` {
		t.Fatalf("got %v", err)
	}
	// additionalProperties absent: anything goes.
	open := mustCompile(t, `{"type":"object","properties":{"a":{"type":"string"}}}`)
	if err := open.ValidateJSON([]byte(`{"zzz":[1]}`)); err != nil {
		t.Fatalf("open schema: %v", err)
	}
}

func TestValidateEnumNumbersAndObjects(t *testing.T) {
	s := mustCompile(t, `{"enum":[1, "1", {"k":[true]}, null]}`)
	for _, ok := range []string{`1`, `1.0`, `"1"`, `{"k":[true]}`, `null`} {
		if err := s.ValidateJSON([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{`2`, `"2"`, `{"k":[false]}`, `{"k":[true],"x":1}`, `false`, `[]`} {
		if err := s.ValidateJSON([]byte(bad)); err == nil {
			t.Errorf("%s: accepted, want enum error", bad)
		}
	}
}

func TestValidateJSONSyntax(t *testing.T) {
	s := mustCompile(t, `{"type":"object"}`)
	for _, in := range []string{``, `{`, `{"a":1} {"b":2}`, `{"a":1}x`, `{'a':1}`} {
		err := s.ValidateJSON([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
			t.Errorf("ValidateJSON(%q) = %v, want a not-valid-JSON error", in, err)
		}
	}
	if err := s.ValidateJSON([]byte(" {} \n")); err != nil {
		t.Errorf("surrounding space: %v", err)
	}
}

func TestValidateGoValues(t *testing.T) {
	s := mustCompile(t, `{"type":"object","properties":{"n":{"type":"integer","minimum":1},"f":{"type":"number"}}}`)
	if err := s.Validate(map[string]any{"n": 3, "f": 2.5}); err != nil {
		t.Fatalf("Go values: %v", err)
	}
	if err := s.Validate(map[string]any{"n": 2.0}); err != nil {
		t.Fatalf("float64 2.0 for integer (decoded without UseNumber): %v", err)
	}
	if err := s.Validate(map[string]any{"n": 2.5}); err == nil {
		t.Fatal("2.5 accepted as integer")
	}
	if err := s.Validate(map[string]any{"n": int64(0)}); err == nil || !strings.Contains(err.Error(), ">= 1") {
		t.Fatalf("minimum with int64: %v", err)
	}
}
