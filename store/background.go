package store

import "context"

type backgroundKey struct{}

// WithBackground marks ctx as background work (the episodic-summary writer,
// a vector load): work no turn waits for. Stores that count their round
// trips count these apart from the turns' critical path.
func WithBackground(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx was marked by WithBackground.
func IsBackground(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}
