package portal

import (
	"net/http"

	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
)

// maxRequestBytes bounds a portal request body; the largest is a password
// change, a few hundred bytes.
const maxRequestBytes = 16 << 10

// decode reads r's body as exactly one strict JSON object into v.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return httpapi.DecodeJSON(w, r, v, maxRequestBytes)
}
