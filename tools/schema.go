package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Schema is a compiled JSON schema of the subset tools use: type (object,
// string, integer, number, boolean, array, null), properties, required, enum,
// items, minLength/maxLength, minItems/maxItems, minimum/maximum and
// additionalProperties (a boolean or a schema). Annotations (description,
// title, default, examples, format, ...) are accepted and ignored; any other
// keyword is rejected by CompileSchema, so a tool never relies on a constraint
// that is silently not checked.
//
// An integer must be written without a fraction or exponent ("3", not "3.0"),
// because tools decode it into a Go integer.
type Schema struct {
	typ         string
	properties  map[string]*Schema
	required    []string
	enum        []any
	items       *Schema
	minLength   *int
	maxLength   *int
	minItems    *int
	maxItems    *int
	minimum     *float64
	maximum     *float64
	noExtra     bool    // additionalProperties: false
	extraSchema *Schema // additionalProperties: {schema}
}

// annotation keywords: accepted, not validated.
var schemaAnnotations = map[string]bool{
	"description": true, "title": true, "default": true, "examples": true,
	"format": true, "$schema": true, "$id": true, "$comment": true,
	"deprecated": true, "readOnly": true, "writeOnly": true,
}

var schemaTypes = map[string]bool{
	"object": true, "string": true, "integer": true, "number": true,
	"boolean": true, "array": true, "null": true,
}

// maxValidationErrors bounds how many problems one Validate reports.
const maxValidationErrors = 10

// CompileSchema parses a JSON schema. It fails on invalid JSON, on keywords
// outside the supported subset and on malformed keyword values.
func CompileSchema(raw json.RawMessage) (*Schema, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return compileSchema(v, "")
}

func compileSchema(v any, at string) (*Schema, error) {
	where := func() string {
		if at == "" {
			return "schema"
		}
		return "schema at " + at
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: must be an object, got %s", where(), jsonTypeName(v))
	}
	s := &Schema{}
	keys := sortedKeys(obj)
	for _, k := range keys {
		val := obj[k]
		kat := joinSchemaPath(at, k)
		switch k {
		case "type":
			t, ok := val.(string)
			if !ok {
				return nil, fmt.Errorf("%s: \"type\" must be a string (type lists are not supported)", where())
			}
			if !schemaTypes[t] {
				return nil, fmt.Errorf("%s: unsupported type %q", where(), t)
			}
			s.typ = t
		case "properties":
			props, ok := val.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: \"properties\" must be an object", where())
			}
			s.properties = make(map[string]*Schema, len(props))
			for _, name := range sortedKeys(props) {
				ps, err := compileSchema(props[name], joinSchemaPath(kat, name))
				if err != nil {
					return nil, err
				}
				s.properties[name] = ps
			}
		case "required":
			list, ok := val.([]any)
			if !ok {
				return nil, fmt.Errorf("%s: \"required\" must be an array of strings", where())
			}
			for _, item := range list {
				name, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("%s: \"required\" must be an array of strings", where())
				}
				s.required = append(s.required, name)
			}
		case "enum":
			list, ok := val.([]any)
			if !ok || len(list) == 0 {
				return nil, fmt.Errorf("%s: \"enum\" must be a non-empty array", where())
			}
			s.enum = list
		case "items":
			is, err := compileSchema(val, kat)
			if err != nil {
				return nil, err
			}
			s.items = is
		case "additionalProperties":
			switch a := val.(type) {
			case bool:
				s.noExtra = !a
			default:
				es, err := compileSchema(val, kat)
				if err != nil {
					return nil, err
				}
				s.extraSchema = es
			}
		case "minLength", "maxLength", "minItems", "maxItems":
			n, err := schemaCount(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %q %w", where(), k, err)
			}
			switch k {
			case "minLength":
				s.minLength = &n
			case "maxLength":
				s.maxLength = &n
			case "minItems":
				s.minItems = &n
			case "maxItems":
				s.maxItems = &n
			}
		case "minimum", "maximum":
			f, _, ok := numberValue(val)
			if !ok || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%s: %q must be a number", where(), k)
			}
			if k == "minimum" {
				s.minimum = &f
			} else {
				s.maximum = &f
			}
		default:
			if !schemaAnnotations[k] {
				return nil, fmt.Errorf("%s: unsupported keyword %q", where(), k)
			}
		}
	}
	if s.noExtra {
		for _, name := range s.required {
			if _, ok := s.properties[name]; !ok {
				return nil, fmt.Errorf("%s: required property %q is not in properties and additionalProperties is false", where(), name)
			}
		}
	}
	return s, nil
}

func schemaCount(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, errors.New("must be a non-negative integer")
	}
	i, err := strconv.Atoi(n.String())
	if err != nil || i < 0 {
		return 0, errors.New("must be a non-negative integer")
	}
	return i, nil
}

func joinSchemaPath(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

// Type is the schema's declared type ("" when it declares none).
func (s *Schema) Type() string { return s.typ }

// ValidationError is one way a value does not fit a schema. Path names the
// offending value: "" for the whole value, "path" for a property,
// "files[2].name" deeper down.
type ValidationError struct {
	Path    string
	Message string
}

func (e *ValidationError) Error() string {
	if e.Path == "" {
		return "arguments: " + e.Message
	}
	return fmt.Sprintf("argument %q: %s", e.Path, e.Message)
}

// ValidationErrors is every problem Validate found (at most ten), in a
// deterministic order.
type ValidationErrors []*ValidationError

func (es ValidationErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// ValidateJSON decodes data and validates it. Invalid JSON is reported as such.
func (s *Schema) ValidateJSON(data []byte) error {
	v, err := decodeJSON(data)
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// Validate checks a decoded JSON value against the schema. Values should be
// decoded with json.Decoder.UseNumber (numbers as json.Number); float64 and
// Go integer values are accepted too. It returns nil or ValidationErrors.
func (s *Schema) Validate(v any) error {
	var errs ValidationErrors
	s.validate(v, "", &errs)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func (s *Schema) validate(v any, path string, errs *ValidationErrors) {
	if len(*errs) >= maxValidationErrors {
		return
	}
	fail := func(format string, args ...any) {
		if len(*errs) < maxValidationErrors {
			*errs = append(*errs, &ValidationError{Path: path, Message: fmt.Sprintf(format, args...)})
		}
	}
	if s.typ != "" && !typeMatches(s.typ, v) {
		got := jsonTypeName(v)
		if _, _, isNum := numberValue(v); isNum {
			got = "number " + numberText(v)
		}
		if s.typ == "integer" && isIntegerLiteral(v) {
			fail("integer %s is out of range", numberText(v))
		} else {
			fail("must be %s, got %s", withArticle(s.typ), got)
		}
		return
	}
	if len(s.enum) > 0 {
		found := false
		for _, e := range s.enum {
			if jsonEqual(e, v) {
				found = true
				break
			}
		}
		if !found {
			opts := make([]string, len(s.enum))
			for i, e := range s.enum {
				opts[i] = compactJSON(e)
			}
			fail("must be one of %s; got %s", strings.Join(opts, ", "), compactJSON(v))
			return
		}
	}
	switch x := v.(type) {
	case string:
		n := utf8.RuneCountInString(x)
		if s.minLength != nil && n < *s.minLength {
			if *s.minLength == 1 {
				fail("must not be empty")
			} else {
				fail("must be at least %d characters long, got %d", *s.minLength, n)
			}
		}
		if s.maxLength != nil && n > *s.maxLength {
			fail("must be at most %d characters long, got %d", *s.maxLength, n)
		}
	case []any:
		if s.minItems != nil && len(x) < *s.minItems {
			fail("must have at least %d items, got %d", *s.minItems, len(x))
		}
		if s.maxItems != nil && len(x) > *s.maxItems {
			fail("must have at most %d items, got %d", *s.maxItems, len(x))
		}
		if s.items != nil {
			for i, item := range x {
				s.items.validate(item, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	case map[string]any:
		for _, name := range s.required {
			if _, ok := x[name]; !ok && len(*errs) < maxValidationErrors {
				*errs = append(*errs, &ValidationError{Path: joinSchemaPath(path, name), Message: "required"})
			}
		}
		for _, name := range sortedKeys(x) {
			child := joinSchemaPath(path, name)
			if ps, ok := s.properties[name]; ok {
				ps.validate(x[name], child, errs)
				continue
			}
			switch {
			case s.extraSchema != nil:
				s.extraSchema.validate(x[name], child, errs)
			case s.noExtra && len(*errs) < maxValidationErrors:
				msg := "unknown property"
				if len(s.properties) > 0 {
					msg += "; allowed: " + strings.Join(sortedKeys(s.properties), ", ")
				}
				*errs = append(*errs, &ValidationError{Path: child, Message: msg})
			}
		}
	default:
		if f, _, ok := numberValue(v); ok {
			if s.minimum != nil && f < *s.minimum {
				fail("must be >= %s, got %s", formatBound(*s.minimum), numberText(v))
			}
			if s.maximum != nil && f > *s.maximum {
				fail("must be <= %s, got %s", formatBound(*s.maximum), numberText(v))
			}
		}
	}
}

func typeMatches(typ string, v any) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, _, ok := numberValue(v)
		return ok
	case "integer":
		_, isInt, ok := numberValue(v)
		return ok && isInt
	}
	return false
}

// numberValue reports v as a float64, and whether it is an integer that fits
// an int64 and is written without fraction or exponent.
func numberValue(v any) (f float64, isInt bool, ok bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return float64(i), true, true
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, false, false
		}
		return f, false, true
	case float64:
		return n, n == math.Trunc(n) && math.Abs(n) < 1<<63, true
	case float32:
		return float64(n), float64(n) == math.Trunc(float64(n)) && math.Abs(float64(n)) < 1<<63, true
	case int:
		return float64(n), true, true
	case int64:
		return float64(n), true, true
	case int32:
		return float64(n), true, true
	}
	return 0, false, false
}

// isIntegerLiteral: a json.Number without fraction or exponent (that may not fit an int64).
func isIntegerLiteral(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	s := strings.TrimPrefix(n.String(), "-")
	return s != "" && !strings.ContainsAny(s, ".eE")
}

func numberText(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return fmt.Sprint(v)
}

func formatBound(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func withArticle(typ string) string {
	switch typ {
	case "object", "array", "integer":
		return "an " + typ
	case "null":
		return "null"
	}
	return "a " + typ
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	}
	if _, _, ok := numberValue(v); ok {
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// jsonEqual compares two decoded JSON values; numbers compare by value.
func jsonEqual(a, b any) bool {
	if fa, _, ok := numberValue(a); ok {
		fb, _, ok := numberValue(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case string, bool, nil:
		return a == b
	}
	return false
}

func compactJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// decodeJSON decodes exactly one JSON value, numbers as json.Number.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("not valid JSON: empty input")
		}
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not valid JSON: unexpected data after the value")
	}
	return v, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
