package clientca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// The gateway takes a client's identity from the certificate registry,
// not from the certificate; IdentityOf reads it from the certificate for
// the tests, which check what was issued.

// IdentityOf extracts the client id (subject CN) and role from a verified
// client leaf. The role comes from the URI SAN "urn:msgbroker:role:<role>";
// certificates without it fall back to the subject OrganizationalUnit. It
// refuses a CA certificate, an invalid client id, an unknown or missing
// role, several role URIs, and a role URI contradicted by a role OU.
func IdentityOf(cert *x509.Certificate) (clientID, role string, err error) {
	if cert == nil {
		return "", "", errors.New("no client certificate")
	}
	if cert.IsCA {
		return "", "", errors.New("client certificate is a CA certificate")
	}
	clientID = cert.Subject.CommonName
	if !ValidClientID(clientID) {
		return "", "", errors.New("client certificate subject CN is not a valid client id")
	}

	var uriRole string
	for _, u := range cert.URIs {
		s := u.String()
		if len(s) < len(RoleURIPrefix) || !strings.EqualFold(s[:len(RoleURIPrefix)], RoleURIPrefix) {
			continue
		}
		if uriRole != "" {
			return "", "", fmt.Errorf("client certificate for %s carries several role URIs", clientID)
		}
		uriRole = s[len(RoleURIPrefix):]
		if !ValidRole(uriRole) {
			return "", "", fmt.Errorf("client certificate for %s carries an unknown role in its URI SAN", clientID)
		}
	}

	var ouRole string
	for _, ou := range cert.Subject.OrganizationalUnit {
		if !ValidRole(ou) {
			continue // unrelated OUs are not ours to judge
		}
		if ouRole != "" && ouRole != ou {
			return "", "", fmt.Errorf("client certificate for %s carries conflicting role OUs", clientID)
		}
		ouRole = ou
	}

	switch {
	case uriRole != "" && ouRole != "" && uriRole != ouRole:
		return "", "", fmt.Errorf("client certificate for %s: role URI %q and role OU %q disagree", clientID, uriRole, ouRole)
	case uriRole != "":
		return clientID, uriRole, nil
	case ouRole != "":
		return clientID, ouRole, nil
	default:
		return "", "", fmt.Errorf("client certificate for %s carries no role", clientID)
	}
}
