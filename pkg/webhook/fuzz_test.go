package webhook

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeReviewInto: DecodeReviewInto (the JSON v2 prototype with encoding/json's
// semantics) accepts and refuses what DecodeReview (encoding/json) does, and decodes the
// same request, the object aside; it never panics.
func FuzzDecodeReviewInto(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"a","dryRun":true,"object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"2","kind":{"kind":"Pod"},"userInfo":{"username":"u","extra":{"a":["b"]}},"object":null,"oldObject":{"x":1}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"UID":"3","Kind":{"Kind":"Pod"},"object":{"Metadata":{"NAME":"\u00e9\ud800"}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"4","kind":{"kind":"Pod"},"object":{"spec":{"containers":"x"}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))
	f.Add([]byte(`[]`))
	type view struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Containers []struct {
				Name string `json:"name"`
			} `json:"containers"`
		} `json:"spec"`
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := DecodeReview(body)
		got, _, err := DecodeReviewInto(body, new(view))
		if err != nil {
			if got != nil || !errors.Is(err, ErrBadReview) {
				t.Fatalf("error %v with review %v", err, got)
			}
			// An object that does not fit the view, or a request holding nothing but
			// its object, is refused here and not by DecodeReview.
			return
		}
		if wantErr != nil {
			t.Fatalf("DecodeReviewInto accepts what DecodeReview refuses (%v)", wantErr)
		}
		want.Request.Object.Raw = nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %+v, DecodeReview's %+v", got.Request, want.Request)
		}
	})
}
