// Command device is an example device of the device channel (POST /api):
// it opens a session, sends messages, sends the first one again (which the
// gateway answers as a duplicate) and closes the session.
//
//	go run ./examples/clients/device -api http://localhost:8080/api \
//		-key 0b6f8a52-7c1e-4d3a-9f1e-2b7c4d5e6f70phone-1 -mode hpke -n 3
//
// In RSA mode it encrypts as the original devices do: a fresh AES-256 key
// per message, AES-CBC with PKCS#7, the key wrapped with RSA-OAEP-SHA256
// (-padding oaep-sha1 or pkcs1v15 for gateways configured so). In HPKE
// mode (recommended for new devices) each message is sealed with HPKE to
// the session's X25519 key. It exits non-zero on any unexpected answer.
package main

import (
	"crypto/ecdh"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/devicecrypto"
)

// answer is the gateway's answer to every request.
type answer struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
	Name    string `json:"name,omitempty"`
}

func main() {
	api := flag.String("api", "http://localhost:8080/api", "URL of the device channel")
	key := flag.String("key", "", "the device's key: user id followed by device id")
	userIDLength := flag.Int("user-id-length", 36, "how many leading characters of the key are the user id")
	mode := flag.String("mode", "rsa", "rsa or hpke")
	padding := flag.String("padding", devicecrypto.OAEPSHA256, "RSA padding: oaep-sha256, oaep-sha1 or pkcs1v15")
	n := flag.Int("n", 3, "how many messages to send")
	flag.Parse()
	if len(*key) <= *userIDLength || (*mode != "rsa" && *mode != "hpke") {
		flag.Usage()
		os.Exit(2)
	}
	d := &device{api: *api, key: *key, userID: (*key)[:*userIDLength], deviceID: (*key)[*userIDLength:],
		client: &http.Client{Timeout: 10 * time.Second}}
	if err := d.session(*mode, *padding, *n); err != nil {
		log.Fatal(err)
	}
}

type device struct {
	api, key, userID, deviceID string
	client                     *http.Client
}

func (d *device) session(mode, padding string, n int) error {
	form := url.Values{"key": {d.key}, "status": {"on"}}
	if mode == "hpke" {
		form.Set("mode", "hpke")
	}
	a, err := d.post(form)
	if err != nil {
		return err
	}
	if a.Code != 0 {
		return fmt.Errorf("auth: %s (%d)", a.Message, a.Code)
	}
	fmt.Printf("session opened for %q (%s)\n", a.Name, mode)
	seal, err := d.sealer(mode, padding, a.Message)
	if err != nil {
		return err
	}
	var first string
	for i := range n + 1 {
		text := fmt.Sprintf(`{"reading": %d, "at": %q}`, i, time.Now().UTC().Format(time.RFC3339Nano))
		want := "delivered"
		if i == n { // send the first message again
			text, want = first, "duplicate"
		}
		if i == 0 {
			first = text
		}
		msg, err := seal(text)
		if err != nil {
			return err
		}
		a, err := d.post(url.Values{"key": {d.key}, "message": {msg}})
		if err != nil {
			return err
		}
		if a.Message != want {
			return fmt.Errorf("message %d: %s (%d), want %s", i, a.Message, a.Code, want)
		}
		fmt.Printf("message %d: %s\n", i, a.Message)
	}
	a, err = d.post(url.Values{"key": {d.key}, "status": {"off"}})
	if err != nil {
		return err
	}
	if a.Message != "deleted" {
		return fmt.Errorf("logout: %s (%d)", a.Message, a.Code)
	}
	fmt.Println("session closed")
	return nil
}

// sealer returns the function that encrypts a message to the session key
// the gateway answered.
func (d *device) sealer(mode, padding, public string) (func(string) (string, error), error) {
	minute := func() int64 { return time.Now().Unix() / 60 }
	if mode == "hpke" {
		raw, err := base64.StdEncoding.DecodeString(public)
		if err != nil {
			return nil, err
		}
		pub, err := ecdh.X25519().NewPublicKey(raw)
		if err != nil {
			return nil, err
		}
		info := devicecrypto.HPKEInfo(d.userID, d.deviceID)
		return func(text string) (string, error) {
			m := minute()
			enc, ct, err := devicecrypto.SealHPKE(pub, info, fmt.Append(nil, m), []byte(text))
			if err != nil {
				return "", err
			}
			b, err := json.Marshal(map[string]any{"enc": enc, "ciphertext": ct, "minute": m})
			return string(b), err
		}, nil
	}
	block, _ := pem.Decode([]byte(public))
	if block == nil {
		return nil, errors.New("the gateway's public key is not PEM")
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := parsed.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the gateway's public key is not RSA")
	}
	p, err := devicecrypto.ParsePadding(padding, "", 0)
	if err != nil {
		return nil, err
	}
	return func(text string) (string, error) {
		b, err := p.Seal(pub, 32, []byte(text), minute())
		return string(b), err
	}, nil
}

func (d *device) post(form url.Values) (*answer, error) {
	resp, err := d.client.PostForm(d.api, form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return nil, err
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("HTTP %d: %q", resp.StatusCode, body)
	}
	return &a, nil
}
