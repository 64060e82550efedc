-- loyalty 1.0 -> 1.1
--
-- Every change after the 1.0 release goes here, in the order it was made
-- (docs/development.md, "Versions").  A fresh CREATE EXTENSION of 1.1 runs
-- loyalty--1.0.sql and then this script, so installs and upgrades are the
-- same by construction; test/t/062_upgrade.pl checks it with data in place.

\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.1'" to load this file. \quit
