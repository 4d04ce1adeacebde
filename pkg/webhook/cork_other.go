//go:build !linux

package webhook

import "context"

// cork does nothing where TCP_CORK is not available.
func cork(context.Context) (uncork func()) { return func() {} }
