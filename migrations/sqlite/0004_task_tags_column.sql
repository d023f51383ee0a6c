-- A task's tags, kept on the task row as well, sorted, as a JSON array: a page of the task list
-- reads them with the rows instead of one aggregate subquery per row. `task_tags` stays the
-- table the application writes and the `tag` filter searches; the triggers below derive the
-- column from it in the same statement, so it cannot drift.
ALTER TABLE tasks ADD COLUMN tags text NOT NULL DEFAULT '[]';

UPDATE tasks SET tags = (SELECT json_group_array(g.tag ORDER BY g.tag) FROM task_tags g WHERE g.task_id = tasks.id);

CREATE TRIGGER task_tags_inserted AFTER INSERT ON task_tags BEGIN
    UPDATE tasks SET tags = (SELECT json_group_array(g.tag ORDER BY g.tag) FROM task_tags g WHERE g.task_id = tasks.id)
    WHERE id = NEW.task_id;
END;

CREATE TRIGGER task_tags_deleted AFTER DELETE ON task_tags BEGIN
    UPDATE tasks SET tags = (SELECT json_group_array(g.tag ORDER BY g.tag) FROM task_tags g WHERE g.task_id = tasks.id)
    WHERE id = OLD.task_id;
END;
