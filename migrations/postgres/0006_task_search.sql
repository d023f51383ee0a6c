-- Full-text search over a task's title, description and comments (`q` on the task list).
--
-- `search` is the task's document, weighted: title A, description B, comments C (so `ts_rank`
-- puts a title match first). `comments_search` holds the comments' part, kept by the triggers
-- on `comments`, so that a change of title or description recomputes `search` from the row
-- alone, without reading the comments. The triggers on `tasks` fire only when the title, the
-- description or the comments' part really changed: a PATCH of status, priority, assignee,
-- due time or tags (and the tags column's own trigger) does no text-search work.
--
-- A tsvector holds at most 1 MiB of lexemes, and a task may have any number of comments: only
-- the first 200,000 characters of its comments (oldest first; at most 800 kB in UTF-8, which
-- leaves room for the title and the description) are indexed, so no comment write can fail on
-- the limit.
ALTER TABLE tasks ADD COLUMN comments_search tsvector NOT NULL DEFAULT ''::tsvector;
ALTER TABLE tasks ADD COLUMN search tsvector;

CREATE FUNCTION tasks_search_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search := setweight(to_tsvector('english', NEW.title), 'A')
        || setweight(to_tsvector('english', NEW.description), 'B')
        || setweight(NEW.comments_search, 'C');
    RETURN NEW;
END;
$$;

CREATE TRIGGER tasks_search_inserted BEFORE INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_search_refresh();
CREATE TRIGGER tasks_search_updated BEFORE UPDATE OF title, description, comments_search ON tasks
    FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title
          OR OLD.description IS DISTINCT FROM NEW.description
          OR OLD.comments_search IS DISTINCT FROM NEW.comments_search)
    EXECUTE FUNCTION tasks_search_refresh();

CREATE FUNCTION comments_to_task_search() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD.task_id;
    ELSE
        changed := NEW.task_id;
    END IF;
    UPDATE tasks SET comments_search = COALESCE(
        (SELECT to_tsvector('english', left(string_agg(c.body, E'\n' ORDER BY c.created_at, c.id), 200000))
         FROM comments c WHERE c.task_id = changed), ''::tsvector)
    WHERE id = changed;
    RETURN NULL;
END;
$$;

CREATE TRIGGER comments_search_changed AFTER INSERT OR DELETE OR UPDATE OF body ON comments
    FOR EACH ROW EXECUTE FUNCTION comments_to_task_search();

UPDATE tasks SET comments_search = COALESCE(
    (SELECT to_tsvector('english', left(string_agg(c.body, E'\n' ORDER BY c.created_at, c.id), 200000))
     FROM comments c WHERE c.task_id = tasks.id), ''::tsvector);
UPDATE tasks SET search = setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('english', description), 'B')
    || setweight(comments_search, 'C');

CREATE INDEX tasks_search_idx ON tasks USING gin (search);
