package api

import (
	"testing"

	"github.com/authgate/pdp/pdp"
)

// FuzzDecisionRequest feeds arbitrary bodies to the direct decision API's
// decoder: each is either a request or an error with a request.* reason.
func FuzzDecisionRequest(f *testing.F) {
	f.Add([]byte(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"id":"d"}}`))
	f.Add([]byte(`{"http":{"method":"GET","path":"/%2e%2e/admin","body_base64":"AAEC"}}`))
	f.Add([]byte(`{"message":{"headers":{"Webhook-Id":"m"},"body":"x","body_base64":"eA=="}}`))
	f.Add([]byte(`{"subject":{}} trailing`))
	f.Add([]byte(`{"unknown":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var body decisionRequest
		if err := decodeStrictJSON(raw, &body); err != nil {
			return
		}
		req, err := body.toRequest()
		if err != nil {
			if r := pdp.ReasonOf(err, ""); r != pdp.ReasonRequestInvalid {
				t.Fatalf("error %v has reason %q, want request.invalid", err, r)
			}
			return
		}
		if req.FrontDoor != pdp.FrontDoorDirect {
			t.Fatalf("front door = %q", req.FrontDoor)
		}
	})
}
