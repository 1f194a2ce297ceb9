#!/usr/bin/env bash
# The admin API walk-through of the README, with curl, openssl and jq
# alone. integration/admin_walkthrough_test.go runs it against a real
# gateway. Environment: ADMIN (the admin API's base URL), MTLS (the
# internal API's), CACERT (the CA root the listeners' certificates chain
# to; drop --cacert for a publicly trusted certificate), ADMIN_EMAIL and
# ADMIN_PASSWORD (an account with role admin: `caddy msgbroker user create
# … --role admin`).
set -euo pipefail
step() { printf '== %s\n' "$*"; }

step "log in as the admin"
TOKEN=$(curl -sSf --cacert "$CACERT" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg e "$ADMIN_EMAIL" --arg p "$ADMIN_PASSWORD" '{email: $e, password: $p}')" \
  "$ADMIN/portal/auth/login" | jq -r .access_token)
AUTH="Authorization: Bearer $TOKEN"

step "make a key and a CSR with openssl; the key never leaves this machine"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout proxy-9.key -subj /CN=proxy-9 -out proxy-9.csr 2>/dev/null

step "issue the certificate from the CSR"
curl -sSf --cacert "$CACERT" -H "$AUTH" -H 'Content-Type: application/json' \
  -d "$(jq -n --rawfile csr proxy-9.csr '{client_id: "proxy-9", role: "proxy", validity_days: 90, csr: $csr}')" \
  "$ADMIN/admin/certificates/generate" > issued.json
jq -r .chain issued.json > proxy-9.chain.crt
jq -r .ca_certificate issued.json > ca.crt
SERIAL=$(jq -r .serial issued.json)
echo "serial $SERIAL"

step "use it on the internal API"
curl -sSf --cacert "$CACERT" --cert proxy-9.chain.crt --key proxy-9.key \
  -H 'Content-Type: application/json' -d '{"sender_number":"+4915200000000","message_body":"hello"}' \
  "$MTLS/internal/messages/register"
echo

step "revoke it"
curl -sSf --cacert "$CACERT" -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"serial\":\"$SERIAL\",\"reason\":\"keyCompromise\"}" "$ADMIN/admin/certificates/revoke" | jq -c '.revoked[] | {serial, status, revocation_reason}'

step "the same request is now refused at the TLS handshake"
if curl -sS --cacert "$CACERT" --cert proxy-9.chain.crt --key proxy-9.key \
  -H 'Content-Type: application/json' -d '{"sender_number":"+4915200000000","message_body":"hello"}' \
  "$MTLS/internal/messages/register"; then
  echo "FAIL: the revoked certificate was accepted"; exit 1
fi
echo "refused"

step "the CRL lists it, and openssl verifies the CRL's signature"
curl -sSf --cacert "$CACERT" -H "$AUTH" "$ADMIN/admin/crl" -o crl.der
# As the README: everything after the leaf. (An earlier `sed '/BEGIN/,/END/'`
# here cut a certificate whenever a base64 line happened to contain "END".)
awk 'n>=1{print} /END CERTIFICATE/{n++}' proxy-9.chain.crt > issuers.crt  # the intermediate
cat ca.crt >> issuers.crt                                                 # and the root
openssl crl -inform DER -in crl.der -CAfile issuers.crt -noout -verify
# openssl prints a serial with an even number of digits (06C7…); the API without leading zeros (6c7…)
openssl crl -inform DER -in crl.der -noout -text | grep -i -A2 "serial number: *0*$SERIAL\$"

step "create a tenant user (no password: one is generated and shown once)"
curl -sSf --cacert "$CACERT" -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"email":"tenant@example.com","role":"user","client_id":"proxy-9"}' \
  "$ADMIN/admin/users" | jq -c '{id, email, role, client_id, generated_password: (.generated_password | length | tostring + " characters")}'

step "statistics: one message of proxy-9, queued; its certificate revoked"
curl -sSf --cacert "$CACERT" -H "$AUTH" "$ADMIN/admin/stats" \
  | jq -c '{messages: .messages.total, queued: .messages.queued, clients: .clients, by_client: [.by_client[] | {client_id, total}]}'

step "the audit log: the revocation, then everything as CSV"
curl -sSf --cacert "$CACERT" -H "$AUTH" "$ADMIN/admin/audit?action=certificate.revoke" \
  | jq -c '.items[] | {actor, action, target, outcome}'
curl -sSf --cacert "$CACERT" -H "$AUTH" -H 'Accept: text/csv' "$ADMIN/admin/audit" | cut -d, -f3-6
step "done"
