package kube

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSmoke(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	v, err := c.Client().Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("version %s ns %s", v.GitVersion, ns)
	sas, err := c.Client().CoreV1().ServiceAccounts(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sas %d", len(sas.Items))
}
