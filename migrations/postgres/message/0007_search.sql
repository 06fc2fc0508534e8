-- Full-text search over message text (DESIGN §6): a tsvector generated from `body`, so the
-- index follows every write by itself: a send indexes the text, an edit replaces it, and
-- delete-for-everyone (body NULL) leaves an empty vector, so no row or index entry reachable
-- by any query keeps a term of the deleted text (the old row version and its GIN entries are
-- dead tuples until VACUUM reclaims them, as for every column).
--
-- The configuration: PostgreSQL's English (Snowball) stemmer, so "running" finds "runs" as
-- SQLite's porter tokenizer does, but WITHOUT the English stop-word list: with it, words such
-- as "the", "not", "to be" would vanish from queries and documents and a search for them
-- would find nothing, while SQLite finds them. Numbers, e-mail addresses and URLs keep the
-- english configuration's mappings (simple, unstemmed).
CREATE TEXT SEARCH DICTIONARY echo_english_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION echo_search (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION echo_search
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
    WITH echo_english_stem;

-- ANDs tsqueries: the query of a search is every phrase of it (each built with
-- phraseto_tsquery from tokens the service extracted, never parsed as tsquery syntax).
CREATE AGGREGATE echo_tsquery_and (tsquery) (SFUNC = tsquery_and, STYPE = tsquery);

ALTER TABLE messages ADD COLUMN body_search tsvector
    GENERATED ALWAYS AS (to_tsvector('echo_search', coalesce(body, ''))) STORED;
CREATE INDEX messages_search ON messages USING GIN (body_search);
