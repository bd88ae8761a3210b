namespace ExtProc.Tenancy.Config;

/// <summary>
/// Reads the <c>cache:</c> section: defaults (<c>enabled</c>, <c>ttl</c>, <c>models</c>, <c>sampled</c>),
/// per-tenant overrides under <c>tenants</c>, <c>max_entry_bytes</c>, <c>memory_bytes</c> (level 1) and
/// <c>redis</c> (level 2). Every tenant named must exist. Cold path.
/// </summary>
internal static class CacheConfigParser
{
    public static CacheConfig Read(MapReader? node, ConfigErrors errors, IReadOnlyList<TenantConfig> tenants)
    {
        if (node is null)
        {
            return CacheConfig.None;
        }

        var defaults = ReadSettings(node, CacheTenantSettings.Off);
        var maxEntry = node.Int("max_entry_bytes", 256, 64 << 20) ?? CacheConfig.DefaultMaxEntryBytes;
        var memory = node.Int("memory_bytes", 1 << 16, int.MaxValue) ?? (int)CacheConfig.None.MemoryBytes;
        var overrides = new Dictionary<string, CacheTenantSettings>(StringComparer.Ordinal);
        if (node.Map("tenants") is { } map)
        {
            var known = new HashSet<string>(StringComparer.Ordinal);
            foreach (var tenant in tenants)
            {
                known.Add(tenant.Id);
            }

            foreach (var (id, value) in map.Entries)
            {
                var entry = MapReader.Open(errors, map.PathOf(id), value);
                if (entry is null)
                {
                    errors.Add(map.PathOf(id), value, "must be a mapping of enabled, ttl, models, sampled");
                    continue;
                }

                if (!known.Contains(id))
                {
                    errors.Add(map.PathOf(id), value, $"tenant '{id}' is not defined in tenants");
                }

                overrides[id] = ReadSettings(entry, defaults);
                entry.Finish();
            }
        }

        var redis = ReadRedis(node.Map("redis"));
        node.Finish();
        return new CacheConfig(defaults, overrides, maxEntry, memory, redis);
    }

    /// <summary>Fields left out keep <paramref name="inherited"/>'s value.</summary>
    private static CacheTenantSettings ReadSettings(MapReader node, CacheTenantSettings inherited) => new(
        node.Bool("enabled") ?? inherited.Enabled,
        node.Duration("ttl", TimeSpan.FromSeconds(1), TimeSpan.FromDays(7)) ?? inherited.Ttl,
        node.StringList("models") ?? inherited.Models,
        node.Bool("sampled") ?? inherited.Sampled);

    private static RedisCacheConfig? ReadRedis(MapReader? node)
    {
        if (node is null)
        {
            return null;
        }

        var endpoint = node.String("endpoint", required: true);
        var budget = node.Duration("call_budget", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(5)) ?? TimeSpan.FromMilliseconds(50);
        var prefix = node.String("prefix") ?? "extproc:cache:";
        node.Finish();
        return endpoint is null ? null : new RedisCacheConfig(endpoint, budget, prefix);
    }
}
