// Package memorytools holds the built-in memory tools agents call:
// memory_search, memory_get, memory_write, core_memory_append and
// core_memory_replace. It is apart from package memory so that the stores,
// which import memory, do not import the tool registry.
package memorytools
