-- Give back one message a live worker holds but is not running (an orphan: the reply
-- of the fetch that moved it was lost), if it is still in the worker's processing list.
--
-- KEYS[1] processing list, KEYS[2..5] queue lists (0, 3, 6, 9).
-- ARGV[1] the message. Returns 1 if given back, 0 if it was no longer there.
--!include give_back

if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
give_back(ARGV[1], {KEYS[2], KEYS[3], KEYS[4], KEYS[5]})
return 1
