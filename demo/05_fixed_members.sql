-- Three fixed, documented members (docs/demo.md, "The fixed members"):
-- the same card number, phone and name in every demo, so that every
-- example in README.md, docs/ and examples/ can be pasted as it is.
-- The generated members' card numbers are random (drawn by enroll from
-- the strong random source); these three get fixed ones, Luhn-checked.
--
--   王芳 Wang Fang   card 800000000011  phone 13800000000  home szx  member, 12,000 points
--   李娜 Li Na       card 800000000029  phone 13900000001  home sha  gold (40 nights)
--   张伟 Zhang Wei   card 800000000037  phone 13700000002  home urc  silver (10 nights), Asia/Urumqi
\set QUIET on
CREATE TEMP TABLE demo_fixed AS
SELECT f.card, e.member_id
  FROM (VALUES ('800000000011', 'szx', '王芳', '13800000000', 'wang.fang@example.com', DATE '1988-05-20', 'female', NULL),
               ('800000000029', 'sha', '李娜', '13900000001', 'li.na@example.com',     DATE '1979-11-02', 'female', NULL),
               ('800000000037', 'urc', '张伟', '13700000002', 'zhang.wei@example.com', DATE '1992-08-08', 'male',   'Asia/Urumqi'))
       AS f(card, store, name, phone, email, born, gender, tz),
  LATERAL loyalty.member_enroll('demo-fixed-' || f.card, f.store, f.name, f.phone, f.email, f.born, f.gender, 'CN', f.tz) e;
UPDATE loyalty.member m SET card_no = f.card FROM demo_fixed f WHERE m.member_id = f.member_id;

-- their stays, recorded by each home store's front desk
SELECT (SELECT member_id FROM loyalty.member WHERE card_no = '800000000011') AS wang,
       (SELECT member_id FROM loyalty.member WHERE card_no = '800000000029') AS li,
       (SELECT member_id FROM loyalty.member WHERE card_no = '800000000037') AS zhang \gset
SET ROLE szx_desk;
SELECT loyalty.stay_record('demo-fixed-wang-1', 'szx',
    :'wang',
    '2026-10-10', '2026-10-12', 1, 1200) \gset
RESET ROLE;
SET ROLE sha_desk;
SELECT loyalty.stay_record('demo-fixed-li-1', 'sha',
    :'li',
    '2026-02-01', '2026-03-13', 1, 8000) \gset
RESET ROLE;
SET ROLE urc_desk;
SELECT loyalty.stay_record('demo-fixed-zhang-1', 'urc',
    :'zhang',
    '2026-05-01', '2026-05-11', 1, 4000) \gset
RESET ROLE;
\set QUIET off
\echo
\echo '== The fixed members every example uses (docs/demo.md)'
SELECT m.card_no, p.full_name, p.phone, m.home_store, m.tier, loyalty.points_balance(m.member_id) AS points
  FROM loyalty.member m JOIN loyalty.member_profile p USING (member_id)
 WHERE m.card_no IN ('800000000011', '800000000029', '800000000037')
 ORDER BY m.card_no;
