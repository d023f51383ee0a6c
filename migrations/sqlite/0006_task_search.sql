-- Full-text search over a task's title, description and comments (`q` on the task list), in an
-- FTS5 table with the Porter stemmer over unicode61 (case and diacritics folded).
--
-- FTS5 rows are keyed by an integer rowid and task ids are UUIDs, so `task_search_rows` gives
-- each task a stable integer (an INTEGER PRIMARY KEY, which VACUUM keeps, unlike the implicit
-- rowid of `tasks`). The triggers keep `task_fts` in step in the statement that changes a task
-- or a comment; the one on task updates fires only when the title or the description really
-- changed, so a PATCH of status, priority, assignee, due time or tags does no FTS work.
CREATE TABLE task_search_rows (
    fts_id  INTEGER PRIMARY KEY,
    task_id blob    NOT NULL UNIQUE
);

CREATE VIRTUAL TABLE task_fts USING fts5(
    fts_title, fts_description, fts_comments, tokenize = 'porter unicode61'
);

INSERT INTO task_search_rows (task_id) SELECT id FROM tasks;
INSERT INTO task_fts (rowid, fts_title, fts_description, fts_comments)
    SELECT r.fts_id, t.title, t.description,
           COALESCE((SELECT group_concat(c.body, char(10)) FROM comments c WHERE c.task_id = t.id), '')
    FROM tasks t JOIN task_search_rows r ON r.task_id = t.id;

CREATE TRIGGER tasks_search_inserted AFTER INSERT ON tasks BEGIN
    INSERT INTO task_search_rows (task_id) VALUES (NEW.id);
    INSERT INTO task_fts (rowid, fts_title, fts_description, fts_comments)
        VALUES ((SELECT fts_id FROM task_search_rows WHERE task_id = NEW.id), NEW.title, NEW.description, '');
END;

CREATE TRIGGER tasks_search_updated AFTER UPDATE OF title, description ON tasks
    WHEN OLD.title IS NOT NEW.title OR OLD.description IS NOT NEW.description
BEGIN
    UPDATE task_fts SET fts_title = NEW.title, fts_description = NEW.description
        WHERE rowid = (SELECT fts_id FROM task_search_rows WHERE task_id = NEW.id);
END;

CREATE TRIGGER tasks_search_deleted AFTER DELETE ON tasks BEGIN
    DELETE FROM task_fts WHERE rowid = (SELECT fts_id FROM task_search_rows WHERE task_id = OLD.id);
    DELETE FROM task_search_rows WHERE task_id = OLD.id;
END;

CREATE TRIGGER comments_search_inserted AFTER INSERT ON comments BEGIN
    UPDATE task_fts SET fts_comments = COALESCE(
        (SELECT group_concat(c.body, char(10)) FROM comments c WHERE c.task_id = NEW.task_id), '')
        WHERE rowid = (SELECT fts_id FROM task_search_rows WHERE task_id = NEW.task_id);
END;

CREATE TRIGGER comments_search_updated AFTER UPDATE OF body ON comments
    WHEN OLD.body IS NOT NEW.body
BEGIN
    UPDATE task_fts SET fts_comments = COALESCE(
        (SELECT group_concat(c.body, char(10)) FROM comments c WHERE c.task_id = NEW.task_id), '')
        WHERE rowid = (SELECT fts_id FROM task_search_rows WHERE task_id = NEW.task_id);
END;

CREATE TRIGGER comments_search_deleted AFTER DELETE ON comments BEGIN
    UPDATE task_fts SET fts_comments = COALESCE(
        (SELECT group_concat(c.body, char(10)) FROM comments c WHERE c.task_id = OLD.task_id), '')
        WHERE rowid = (SELECT fts_id FROM task_search_rows WHERE task_id = OLD.task_id);
END;
