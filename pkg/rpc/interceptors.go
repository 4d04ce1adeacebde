package rpc

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// slogAdapter lets the logging interceptor write through a *slog.Logger.
func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// serverCodeLevel picks the level at which a finished server call is logged: successes and
// cancellations are routine (debug), caller mistakes are informational, and failures of the
// server itself are warnings or errors.
func serverCodeLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK, codes.Canceled:
		return logging.LevelDebug
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.Unauthenticated,
		codes.PermissionDenied, codes.FailedPrecondition, codes.OutOfRange, codes.Aborted:
		return logging.LevelInfo
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return logging.LevelError
	default: // DeadlineExceeded, ResourceExhausted, Unavailable
		return logging.LevelWarn
	}
}

// clientCodeLevel picks the level at which a finished client call is logged.
func clientCodeLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK, codes.Canceled:
		return logging.LevelDebug
	default:
		return logging.LevelWarn
	}
}

// loggingOptions logs only the end of each call, with its code and duration.
func loggingOptions(level logging.CodeToLevel) []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(level),
	}
}

// recoveryHandler logs a handler panic with its stack and returns codes.Internal, hiding
// the panic's details from the caller.
func recoveryHandler(l *slog.Logger, panics prometheus.Counter) func(ctx context.Context, p any) error {
	return func(ctx context.Context, p any) error {
		panics.Inc()
		method, _ := grpc.Method(ctx)
		l.ErrorContext(ctx, "recovered from panic in gRPC handler",
			"grpc.method", method, "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal server error")
	}
}

// register registers c with reg and returns the collector to use: c itself, or the one
// registered earlier when an identical collector already exists (several servers or
// clients in one process share their metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, err
	}
	return c, nil
}
