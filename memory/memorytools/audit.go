package memorytools

// ReadOnly: memory_search and memory_get only read; the writes are audited.
func (t *tool) ReadOnly() bool { return t.spec.Name == "memory_search" || t.spec.Name == "memory_get" }
