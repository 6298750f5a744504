package teamtools

// ReadOnly: blackboard_read only reads; the others send, spawn or write, and
// are audited.
func (t *tool) ReadOnly() bool { return t.spec.Name == "blackboard_read" }
