-- 0002_memory: long-term memory (episodic and archival memories, their
-- chunks, vectors and full-text index) and agents' core memory blocks.
--
-- tsv indexes the Go tokenizer's output (memory.Tokenize: lowercased words
-- and CJK character bigrams) given as a tsvector literal, so no PostgreSQL
-- parser touches it: the built-in parsers do not segment Chinese.
-- memory_terms keeps each scope's document frequencies, which ts_rank lacks,
-- so the full-text leg can weight rare terms (BM25-style idf). The row with
-- term '' counts the scope's chunks.
--
-- memory_vectors.embedding has no fixed dimension; the store creates one
-- partial HNSW index per embedding model, on embedding::vector(dim) with
-- cosine ops, when it first sees the model.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE memories (
    org_id     TEXT             NOT NULL,
    user_id    TEXT             NOT NULL,
    project_id TEXT             NOT NULL DEFAULT '',
    memory_id  TEXT             NOT NULL,
    type       TEXT             NOT NULL,
    agent_id   TEXT             NOT NULL DEFAULT '',
    group_id   TEXT             NOT NULL DEFAULT '',
    text       TEXT             NOT NULL,
    metadata   JSONB            NOT NULL DEFAULT '{}',
    importance DOUBLE PRECISION NOT NULL DEFAULT 0,
    chunks     INTEGER          NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, memory_id)
);

CREATE INDEX memories_created_idx ON memories (org_id, user_id, project_id, created_at);

CREATE TABLE memory_chunks (
    id         BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     TEXT     NOT NULL,
    user_id    TEXT     NOT NULL,
    project_id TEXT     NOT NULL DEFAULT '',
    memory_id  TEXT     NOT NULL,
    seq        INTEGER  NOT NULL,
    text       TEXT     NOT NULL,
    tsv        TSVECTOR NOT NULL,
    UNIQUE (org_id, user_id, project_id, memory_id, seq)
);

CREATE INDEX memory_chunks_tsv_idx ON memory_chunks USING GIN (tsv);

CREATE TABLE memory_vectors (
    chunk_id   BIGINT NOT NULL,
    org_id     TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL DEFAULT '',
    model      TEXT   NOT NULL,
    dim        INTEGER NOT NULL,
    embedding  vector NOT NULL,
    PRIMARY KEY (chunk_id, model)
);

CREATE INDEX memory_vectors_model_idx ON memory_vectors (org_id, user_id, project_id, model);

CREATE TABLE memory_terms (
    org_id     TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL DEFAULT '',
    term       TEXT   NOT NULL,
    df         BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, term)
);

CREATE TABLE core_blocks (
    org_id     TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    project_id TEXT        NOT NULL DEFAULT '',
    agent_id   TEXT        NOT NULL,
    label      TEXT        NOT NULL,
    value      TEXT        NOT NULL,
    lim        INTEGER     NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, agent_id, label)
);
