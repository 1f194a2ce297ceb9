package broker

import (
	"bytes"
	"context"
	"encoding/pem"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// CRLDocument is the CRL as /crl and /admin/crl serve it, from the
// query's format ("", der or pem) and chain ("" or full): the DER CRL of
// the current client-issuing intermediate, the same as PEM, or with
// chain=full a PEM bundle of a CRL for every level of a client's chain
// (see CRLChain). One implementation, so both routes answer the same
// CRLs.
func (c *Certificates) CRLDocument(ctx context.Context, format, chain string) (body []byte, contentType string, err error) {
	if format != "" && format != "der" && format != "pem" {
		return nil, "", apperr.New(apperr.Invalid, "invalid_format", "format must be der or pem")
	}
	if chain != "" && chain != "full" {
		return nil, "", apperr.New(apperr.Invalid, "invalid_chain", "chain must be full")
	}
	if chain == "full" && format == "der" {
		// DER has no way to hold several CRLs in one body.
		return nil, "", apperr.New(apperr.Invalid, "invalid_format", "chain=full is served as PEM only")
	}
	if chain == "" {
		der, err := c.CRL(ctx)
		if err != nil {
			return nil, "", err
		}
		if format == "pem" {
			return pemCRL(der), "application/x-pem-file", nil
		}
		return der, "application/pkix-crl", nil
	}
	ders, err := c.CRLChain(ctx)
	if err != nil {
		return nil, "", err
	}
	var bundle bytes.Buffer
	for _, der := range ders {
		bundle.Write(pemCRL(der))
	}
	return bundle.Bytes(), "application/x-pem-file", nil
}

func pemCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}
