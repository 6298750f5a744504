-- 0003_memory_terms: document frequencies for pruning full-text queries.
--
-- memory_fts_vocab exposes, for each token of memory_fts, how many chunks
-- contain it. The full-text leg drops query terms that are in a large share
-- of the chunks (memory.SelectTerms), so a search scores a bounded number of
-- chunks however many memories there are.

CREATE VIRTUAL TABLE memory_fts_vocab USING fts5vocab(memory_fts, 'row');
