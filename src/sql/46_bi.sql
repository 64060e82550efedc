-- BI (docs/privacy.md): pseudonymous member keys, generalised
-- quasi-identifiers, no contact data, and aggregates that hide every group
-- smaller than loyalty.bi_min_group_size().

CREATE FUNCTION loyalty.bi_min_group_size() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 10;
COMMENT ON FUNCTION loyalty.bi_min_group_size() IS
    'Smallest group an aggregate BI view shows (k); smaller groups are suppressed';

-- One row per member: keyed pseudonym, store, tier, gender, decade of birth,
-- month of enrolment.  Erased members are left out.
CREATE VIEW loyalty.bi_members WITH (security_barrier) AS
SELECT loyalty.pseudonym(m.member_id) AS member_key,
       m.home_store, m.tier, m.status, p.gender,
       loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       to_char(m.enrolled_at AT TIME ZONE 'UTC', 'YYYY-MM') AS enrolled_month
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased';
COMMENT ON VIEW loyalty.bi_members IS 'Members for BI: pseudonymous key, generalised quasi-identifiers';

-- One row per stay, by month.
CREATE VIEW loyalty.bi_stays WITH (security_barrier) AS
SELECT loyalty.pseudonym(s.member_id) AS member_key, s.store_code,
       date_trunc('month', s.check_in)::date AS stay_month,
       (s.check_out - s.check_in) AS nights, s.rooms, s.room_revenue, s.other_revenue, s.status
  FROM loyalty.stay s;
COMMENT ON VIEW loyalty.bi_stays IS 'Stays for BI by month, with pseudonymous member keys';

-- Member counts by store, tier, gender and decade of birth; groups of fewer
-- than k members are not shown.
CREATE VIEW loyalty.bi_segments WITH (security_barrier) AS
SELECT m.home_store, m.tier, p.gender, loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       count(*) AS members
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased'
 GROUP BY 1, 2, 3, 4
HAVING count(*) >= loyalty.bi_min_group_size();
COMMENT ON VIEW loyalty.bi_segments IS 'Member counts per segment; groups smaller than bi_min_group_size() suppressed';

ALTER VIEW loyalty.bi_members OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_stays OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_segments OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.bi_members, loyalty.bi_stays, loyalty.bi_segments FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.bi_min_group_size() FROM PUBLIC;
GRANT SELECT ON loyalty.bi_members, loyalty.bi_stays, loyalty.bi_segments TO loyalty_bi;
GRANT EXECUTE ON FUNCTION loyalty.pseudonym(uuid), loyalty.bi_min_group_size()
    TO loyalty_bi, loyalty_view_owner;
