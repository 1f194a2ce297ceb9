// Command proxy is an example proxy: it registers a message with the
// broker over mutual TLS, as a proxy does when it enqueues one.
//
//	./caddy msgbroker cert issue proxy-1 --role proxy --out ./certs --config Caddyfile.example
//	go run ./examples/clients/proxy -client proxy-1 -number +4915200000000 -body "hello"
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/msgbroker/caddy-msgbroker/examples/clients/internal/mtls"
)

func main() {
	conn := mtls.Register("proxy-1")
	number := flag.String("number", "+4915200000000", "sender number, E.164")
	body := flag.String("body", "hello from the example proxy", "message body")
	id := flag.String("id", "", "message id (UUID); the broker generates one when empty")
	flag.Parse()

	client, err := conn.Client()
	if err != nil {
		log.Fatal(err)
	}
	request := map[string]any{"sender_number": *number, "message_body": *body}
	if *id != "" {
		request["message_id"] = *id
	}
	var receipt struct {
		MessageID string `json:"message_id"`
		Status    string `json:"status"`
		QueuedAt  string `json:"queued_at"`
	}
	if err := mtls.Call(client, "POST", conn.URL+"/internal/messages/register", request, &receipt); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("registered %s: %s at %s\n", receipt.MessageID, receipt.Status, receipt.QueuedAt)
}
