-- streamhost.storage: StorageLevel, pyspark's names and flags. Everything is kept in memory in
-- one process; the levels are accepted and reported so pyspark jobs port unchanged.
local StorageLevel = {}
StorageLevel.__index = StorageLevel

local function level(name, useDisk, useMemory, useOffHeap, deserialized, replication)
    return setmetatable({ name = name, useDisk = useDisk, useMemory = useMemory, useOffHeap = useOffHeap,
        deserialized = deserialized, replication = replication or 1 }, StorageLevel)
end

StorageLevel.__tostring = function(l) return "StorageLevel." .. l.name end

StorageLevel.DISK_ONLY = level("DISK_ONLY", true, false, false, false)
StorageLevel.DISK_ONLY_2 = level("DISK_ONLY_2", true, false, false, false, 2)
StorageLevel.MEMORY_ONLY = level("MEMORY_ONLY", false, true, false, false)
StorageLevel.MEMORY_ONLY_2 = level("MEMORY_ONLY_2", false, true, false, false, 2)
StorageLevel.MEMORY_AND_DISK = level("MEMORY_AND_DISK", true, true, false, false)
StorageLevel.MEMORY_AND_DISK_2 = level("MEMORY_AND_DISK_2", true, true, false, false, 2)
StorageLevel.OFF_HEAP = level("OFF_HEAP", true, true, true, false)

return StorageLevel
