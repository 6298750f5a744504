-- 0002_memory: long-term memory (episodic and archival memories, their
-- chunks, vectors and full-text index) and agents' core memory blocks.
--
-- Full-text search indexes the Go tokenizer's output (memory.Tokenize:
-- lowercased words and CJK character bigrams, space separated), because no
-- FTS5 tokenizer segments Chinese. Vectors are little-endian float32 blobs,
-- one row per chunk and embedding model, scored in Go.

CREATE TABLE memories (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    memory_id  TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    agent_id   TEXT    NOT NULL DEFAULT '',
    group_id   TEXT    NOT NULL DEFAULT '',
    text       TEXT    NOT NULL,
    metadata   TEXT    NOT NULL DEFAULT '{}',
    importance REAL    NOT NULL DEFAULT 0,
    chunks     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, memory_id)
) STRICT;

CREATE INDEX memories_created_idx ON memories (org_id, user_id, project_id, created_at);

CREATE TABLE memory_chunks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    memory_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    UNIQUE (org_id, user_id, project_id, memory_id, seq)
) STRICT;

CREATE TABLE memory_vectors (
    chunk_id  INTEGER NOT NULL,
    model     TEXT    NOT NULL,
    dim       INTEGER NOT NULL,
    embedding BLOB    NOT NULL,
    PRIMARY KEY (chunk_id, model)
) STRICT;

CREATE INDEX memory_vectors_model_idx ON memory_vectors (model, chunk_id);

-- rowid = memory_chunks.id. Contentless: the tokens are only indexed.
CREATE VIRTUAL TABLE memory_fts USING fts5(
    tokens,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TABLE core_blocks (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    agent_id   TEXT    NOT NULL,
    label      TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    lim        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, agent_id, label)
) STRICT;
