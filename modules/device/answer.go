package device

import (
	"net/http"
	"strconv"
	"unicode/utf8"
)

// Answer codes. 0 to 2 are the original device server's, whose answers
// existing devices parse; 3 and up are errors, answered with HTTP 400
// (503 for code 8) in the same shape.
const (
	codeOK       = 0 // auth (with the public key), deleted, delivered
	codeAgain    = 1 // already auth, duplicate
	codeNotFound = 2 // unknown user, device or session
	// codeInvalid: no key, a key too long, neither or both of status and
	// message, a body that is not a form.
	codeInvalid = 3
	// codeBadStatus: status is neither on nor off.
	codeBadStatus = 4
	// codeMalformed: the message is not a valid envelope (JSON, base64,
	// sizes).
	codeMalformed = 5
	// codeUndecryptable: the message could not be decrypted; one answer
	// for every cause, so it reveals nothing about padding.
	codeUndecryptable = 6
	// codeTooLarge: the request body is over the limit.
	codeTooLarge = 7
	// codeUnavailable: the session store or the directory does not
	// answer (HTTP 503).
	codeUnavailable = 8
	// codeBadMode: mode is neither rsa nor hpke.
	codeBadMode = 9
	// codeStale: minute_window is set and the minute is outside it.
	codeStale = 10
)

// writeAnswer writes the answer in the original server's exact form:
// `{"message": "…", "code": N}` with a space after each colon and comma,
// plus `"name"` on a successful auth. encoding/json would write it without
// the spaces and escape <, > and &, which devices comparing bytes notice.
func writeAnswer(w http.ResponseWriter, status int, message string, code int, name *string) {
	b := make([]byte, 0, len(message)+64)
	b = append(b, `{"message": `...)
	b = appendJSONString(b, message)
	b = append(b, `, "code": `...)
	b = strconv.AppendInt(b, int64(code), 10)
	if name != nil {
		b = append(b, `, "name": `...)
		b = appendJSONString(b, *name)
	}
	b = append(b, '}')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// appendJSONString quotes s as Python's json.dumps(ensure_ascii=False)
// does, which is how the original server wrote text: UTF-8 kept, control
// characters escaped. Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch r {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		default:
			if r < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
				continue
			}
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
