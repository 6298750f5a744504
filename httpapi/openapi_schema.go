package httpapi

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// jsonSchema is one JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1).
type jsonSchema = map[string]any

// schemaSet reflects Go types into JSON Schemas by their json tags, the
// same way encoding/json reads and writes them, so the document cannot drift
// from the structs the handlers bind and answer with. Named structs become
// components (#/components/schemas/<name>); anonymous ones are inlined.
//
// A type is reflected in one of two modes. As a request body (input), every
// field is optional and unknown fields are refused (bindJSON disallows
// them). As a response, a field is required unless it is omitempty, and a
// nil pointer, slice or map without omitempty is null.
type schemaSet struct {
	enums map[string][]string // see answerEnums
	defs  map[string]jsonSchema
	names map[schemaKey]string
	owner map[string]schemaKey
}

type schemaKey struct {
	t     reflect.Type
	input bool
}

func newSchemaSet() *schemaSet {
	s := &schemaSet{enums: answerEnums(), defs: map[string]jsonSchema{}, names: map[schemaKey]string{}, owner: map[string]schemaKey{}}
	// The one error shape is "Error", whatever its Go name.
	errKey := schemaKey{t: reflect.TypeFor[apiError]()}
	s.names[errKey] = "Error"
	s.owner["Error"] = errKey
	s.defs["Error"] = s.structSchema(errKey.t, false)
	return s
}

// ref is the schema of v's type in the given mode.
func (s *schemaSet) ref(v any, input bool) jsonSchema {
	return s.of(reflect.TypeOf(v), input)
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

func (s *schemaSet) of(t reflect.Type, input bool) jsonSchema {
	switch t {
	case timeType:
		return jsonSchema{"type": "string", "format": "date-time"}
	case rawType:
		return jsonSchema{} // any JSON value
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(s.of(t.Elem(), input))
	case reflect.Bool:
		return jsonSchema{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32:
		return jsonSchema{"type": "integer"}
	case reflect.Int64:
		return jsonSchema{"type": "integer", "format": "int64"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return jsonSchema{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return jsonSchema{"type": "number"}
	case reflect.String:
		return jsonSchema{"type": "string"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return jsonSchema{"type": "string", "contentEncoding": "base64"}
		}
		return jsonSchema{"type": "array", "items": s.of(t.Elem(), input)}
	case reflect.Map:
		return jsonSchema{"type": "object", "additionalProperties": s.of(t.Elem(), input)}
	case reflect.Struct:
		if t.Name() == "" {
			return s.structSchema(t, input)
		}
		return jsonSchema{"$ref": "#/components/schemas/" + s.component(t, input)}
	}
	return jsonSchema{} // an interface: any JSON value
}

// component names t's schema among the components, reflecting it once.
func (s *schemaSet) component(t reflect.Type, input bool) string {
	key := schemaKey{t, input}
	if name, ok := s.names[key]; ok {
		return name
	}
	base, pkg := exportedName(t.Name()), exportedName(pkgName(t))
	// A type of another package with the same name, or the same type as a
	// request body and as a response, gets a longer name.
	name := base + strconv.Itoa(len(s.defs))
	for _, n := range []string{base, pkg + base, base + "Input", pkg + base + "Input"} {
		if _, taken := s.owner[n]; !taken {
			name = n
			break
		}
	}
	s.names[key] = name
	s.owner[name] = key
	s.defs[name] = jsonSchema{} // taken before reflecting, for recursive types
	s.defs[name] = s.structSchema(t, input)
	return name
}

// structSchema reflects a struct's fields as encoding/json sees them:
// json names, "-" skipped, embedded structs flattened (outer fields win).
func (s *schemaSet) structSchema(t reflect.Type, input bool) jsonSchema {
	props := jsonSchema{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, shadowed := props[name]; shadowed {
				continue
			}
			omitempty := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
			fs := s.of(ft, input)
			if canBeNil(ft) && (input || !omitempty) && ft.Kind() != reflect.Pointer && ft != rawType {
				fs = nullable(fs)
			}
			if values, ok := s.enums[pkgName(t)+"."+t.Name()+"."+name]; ok && !input {
				fs["enum"] = values
			}
			props[name] = fs
			if !input && !omitempty {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := jsonSchema{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	if input {
		out["additionalProperties"] = false
	}
	return out
}

// canBeNil: kinds encoding/json writes as null when nil.
func canBeNil(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

// nullable lets schema also be null.
func nullable(schema jsonSchema) jsonSchema {
	if len(schema) == 0 {
		return schema // any value already includes null
	}
	if typ, ok := schema["type"].(string); ok {
		out := jsonSchema{}
		for k, v := range schema {
			out[k] = v
		}
		out["type"] = []string{typ, "null"}
		return out
	}
	return jsonSchema{"anyOf": []any{schema, jsonSchema{"type": "null"}}}
}

func exportedName(name string) string {
	if name == "" {
		return name
	}
	r := []rune(name)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func pkgName(t reflect.Type) string {
	p := t.PkgPath()
	return p[strings.LastIndex(p, "/")+1:]
}
