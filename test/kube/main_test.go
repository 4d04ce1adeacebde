package kube

import (
	"testing"
)

func TestMain(m *testing.M) {
	Main(m, Options{ControllerManager: true, Scheduler: true})
}
