// Package openapi holds the OpenAPI 3.1 document of the gateway's HTTP
// surface, openapi.yaml, embedded in the binary.
//
// The document describes what the handlers answer today, error answers
// included; internal/apivalidate checks real traffic against it in the
// tests, so a handler and its description cannot drift apart unnoticed.
//
// Conventions for adding routes (portal, admin, device, …):
//
//   - one path item per route, each operation with a tag, an operationId
//     and every status the handler can answer;
//   - request and response bodies as named schemas in components/schemas;
//     response schemas have additionalProperties: false, so an undocumented
//     field fails validation; request schemas leave it open when the
//     decoder ignores unknown fields;
//   - error answers use components/schemas/Error, narrowed per response to
//     the codes it can carry (allOf with an enum on error.code, and
//     error.message repeated beside it: the lint checks examples as if a
//     schema that does not say otherwise were closed); errors shared by
//     several operations are components/responses;
//   - formats date-time and uuid for times and ids, type [<type>, 'null']
//     for fields that may be null (3.1 has no nullable);
//   - security on every operation: the clientCertificate (mutualTLS) scheme
//     with the role for /internal/, bearerAuth (JWT) for portal routes,
//     security: [] for public ones;
//   - at least one 4xx answer per operation, so the lint
//     (redocly lint, recommended rules) stays clean.
package openapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var document []byte

// YAML returns the document as written in openapi.yaml.
func YAML() []byte {
	return slices.Clone(document)
}

var jsonDocument = sync.OnceValues(func() ([]byte, error) {
	return yamlToJSON(document)
})

// JSON returns the document converted to JSON, keys in the order of the
// YAML (the UIs show operations in document order). The conversion runs
// once; it panics if the embedded YAML cannot be converted, which the
// package's tests rule out.
func JSON() []byte {
	out, err := jsonDocument()
	if err != nil {
		panic(fmt.Sprintf("openapi: converting the embedded document to JSON: %v", err))
	}
	return slices.Clone(out)
}

// Load parses and validates the document. Each call returns a new
// *openapi3.T, which the caller may modify.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(document)
	if err != nil {
		return nil, fmt.Errorf("openapi: parsing openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// yamlToJSON converts a YAML document to JSON, keeping the key order.
func yamlToJSON(in []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(in, &root); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, &root); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("line %d: expected one document", n.Line)
		}
		return writeJSON(buf, n.Content[0])
	case yaml.AliasNode:
		return writeJSON(buf, n.Alias)
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			if key.Kind != yaml.ScalarNode || key.Tag == "!!merge" {
				return fmt.Errorf("line %d: only scalar keys are supported", key.Line)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			name, err := json.Marshal(key.Value)
			if err != nil {
				return err
			}
			buf.Write(name)
			buf.WriteByte(':')
			if err := writeJSON(buf, value); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, item); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		out, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		buf.Write(out)
		return nil
	}
	return fmt.Errorf("line %d: unsupported YAML node", n.Line)
}
