// Package skills reads Agent Skills: a folder with a SKILL.md (YAML front
// matter naming the skill and saying what it is for, then instructions) and
// any files the instructions refer to. It parses and validates SKILL.md,
// unpacks uploaded zip and tar archives with defences against hostile ones
// (size and count caps, no paths that leave the folder, no links), reads the
// daemon's skills folder, and merges that folder's skills with a scope's
// uploaded ones into the catalog agents are granted skills from.
package skills
