namespace ExtProc.Tenancy.Config;

/// <summary>
/// The <c>cache:</c> section: the response cache is off unless a tenant opts in, either through the section's
/// defaults or its own entry under <c>tenants</c> (which overrides the defaults field by field).
/// </summary>
internal sealed record CacheConfig(
    CacheTenantSettings Defaults,
    IReadOnlyDictionary<string, CacheTenantSettings> Tenants,
    int MaxEntryBytes,
    long MemoryBytes,
    RedisCacheConfig? Redis)
{
    public const int DefaultMaxEntryBytes = 1 << 20;

    public static readonly CacheConfig None = new(CacheTenantSettings.Off, new Dictionary<string, CacheTenantSettings>(), DefaultMaxEntryBytes, 64L << 20, null);

    /// <summary>True when at least one tenant may be served from the cache (otherwise no stage is built).</summary>
    public bool AnyEnabled
    {
        get
        {
            if (Defaults.Enabled)
            {
                return true;
            }

            foreach (var settings in Tenants.Values)
            {
                if (settings.Enabled)
                {
                    return true;
                }
            }

            return false;
        }
    }

    public CacheTenantSettings For(string tenant) => Tenants.TryGetValue(tenant, out var settings) ? settings : Defaults;
}

/// <summary>
/// What the cache does for one tenant. <see cref="Models"/> are public model globs (null: every model).
/// <see cref="Sampled"/> lets requests that sample (temperature above 0, or absent: the providers then sample at 1)
/// be answered from the cache; by default only explicit <c>temperature: 0</c> requests are.
/// </summary>
internal sealed record CacheTenantSettings(bool Enabled, TimeSpan Ttl, IReadOnlyList<string>? Models, bool Sampled)
{
    public static readonly CacheTenantSettings Off = new(false, TimeSpan.FromMinutes(5), null, false);
}

/// <summary>Level 2: one Redis shared by the replicas, every call bounded by <see cref="CallBudget"/> (faults.md §0.4).</summary>
internal sealed record RedisCacheConfig(string Endpoint, TimeSpan CallBudget, string Prefix);
