\ir 11_ledger_authority.sql
