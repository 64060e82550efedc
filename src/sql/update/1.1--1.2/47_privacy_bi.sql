-- privacy: k-anonymous BI row views and pseudonyms re-keyed by erasure
-- (issue 12.6, 12.7); the views are re-created with new columns
DROP VIEW loyalty.bi_members, loyalty.bi_stays;
\ir 47_privacy_bi.sql
