package refusalsextension

// Config has nothing to set: the extension counts what the receiver it is
// attached to refuses. It is a struct so that settings can come later
// without breaking configs.
type Config struct{}

// Validate accepts the empty config.
func (*Config) Validate() error { return nil }
