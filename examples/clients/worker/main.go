// Command worker is an example worker: it reports a delivery attempt for a
// message and then confirms it (or, with -fail, reports it failed).
//
//	./caddy msgbroker cert issue worker-1 --role worker --out ./certs --config Caddyfile.example
//	go run ./examples/clients/worker -client worker-1 -id <message_id>
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/msgbroker/caddy-msgbroker/examples/clients/internal/mtls"
)

type state struct {
	MessageID string  `json:"message_id"`
	Status    string  `json:"status"`
	Attempts  int     `json:"attempts"`
	LastError *string `json:"last_error"`
}

func main() {
	conn := mtls.Register("worker-1")
	id := flag.String("id", "", "message id to work on (required)")
	retries := flag.Int("retries", 0, "failed attempts to report before the outcome")
	fail := flag.Bool("fail", false, "report the message failed instead of delivered")
	flag.Parse()
	if *id == "" {
		log.Fatal("-id is required")
	}
	client, err := conn.Client()
	if err != nil {
		log.Fatal(err)
	}
	statusURL := conn.URL + "/internal/messages/" + *id + "/status"
	var st state
	report := func(body map[string]any) {
		if err := mtls.Call(client, "PUT", statusURL, body, &st); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s (attempts %d)\n", st.MessageID, st.Status, st.Attempts)
	}
	report(map[string]any{"status": "processing"})
	for range *retries {
		report(map[string]any{"status": "retrying", "error": "gateway timeout", "reason": "timeout"})
		report(map[string]any{"status": "processing"})
	}
	if *fail {
		report(map[string]any{"status": "failed", "error": "number unreachable", "reason": "unreachable"})
		return
	}
	if err := mtls.Call(client, "POST", conn.URL+"/internal/messages/deliver", map[string]any{"message_id": *id}, &st); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s\n", st.MessageID, st.Status)
}
