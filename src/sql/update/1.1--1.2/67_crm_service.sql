-- crm: service cases and the interaction log (docs/crm.md)
\ir 67_service.sql

-- the escalation job joins the schedule list (src/sql/60_job.sql)
-- (its job joins loyalty.job_schedule_defaults() in 60_job_structure.sql,
-- which holds the one complete list of 1.2's jobs)

