-- Full-text search over message text (DESIGN §6): an FTS5 index over messages(body) with
-- external content (the text is stored once, in `messages`), kept in step by triggers: a
-- send indexes the text, an edit (UPDATE OF body) replaces it, delete-for-everyone (body set
-- NULL) and row deletion remove it.
--
-- Tokenizer: unicode61 folding case and diacritics ("cafe" finds "café"), then the porter
-- stemmer ("running" finds "runs"). No stop words.
--
-- `secure-delete` (SQLite 3.42+; the bundled library is newer): removing a row's terms
-- rewrites the index pages that hold them instead of appending a delete marker (which would
-- itself carry the terms until the next merge), so after delete-for-everyone no term of the
-- text is left in any shadow table (`message_search_data`, `_idx`, `_docsize`).
--
-- The index refers to messages by rowid (messages has an implicit one: its key is TEXT). A
-- VACUUM may renumber implicit rowids; run
-- `INSERT INTO message_search(message_search) VALUES ('rebuild')` after one.
CREATE VIRTUAL TABLE message_search USING fts5(
    body,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1);

-- Messages sent before this migration.
INSERT INTO message_search (rowid, body) SELECT rowid, body FROM messages WHERE body IS NOT NULL;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
WHEN new.body IS NOT NULL BEGIN
    INSERT INTO message_search (rowid, body) VALUES (new.rowid, new.body);
END;

-- An external-content index forgets a row by being told its old text; one trigger, so the
-- old text is forgotten before the new one is indexed under the same rowid.
CREATE TRIGGER message_search_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO message_search (message_search, rowid, body)
        SELECT 'delete', old.rowid, old.body WHERE old.body IS NOT NULL;
    INSERT INTO message_search (rowid, body)
        SELECT new.rowid, new.body WHERE new.body IS NOT NULL;
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages
WHEN old.body IS NOT NULL BEGIN
    INSERT INTO message_search (message_search, rowid, body) VALUES ('delete', old.rowid, old.body);
END;
