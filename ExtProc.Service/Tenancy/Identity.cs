using System.Text;
using ExtProc.Tenancy.Config;

namespace ExtProc.Tenancy;

/// <summary>How the caller proved who it is. Wire names go to dynamic metadata (<c>identity</c>).</summary>
internal enum IdentityKind
{
    None,
    ApiKey,
    Jwt,
    Spiffe,
    X509Subject,

    /// <summary>No credential at all, on a config that names a tenant for that (identity.anonymous).</summary>
    Anonymous,
}

internal static class IdentityKindExtensions
{
    public static string ToWireName(this IdentityKind kind) => kind switch
    {
        IdentityKind.ApiKey => "api_key",
        IdentityKind.Jwt => "jwt",
        IdentityKind.Spiffe => "spiffe",
        IdentityKind.X509Subject => "x509_subject",
        IdentityKind.Anonymous => "anonymous",
        _ => "none",
    };
}

/// <summary>A configured tenant, ready for the hot path.</summary>
internal sealed class Tenant
{
    public Tenant(TenantConfig config)
    {
        Id = config.Id;
        Config = config;
        HeaderValue = Encoding.ASCII.GetBytes(config.Id);
        Policy = new EffectivePolicy(config.Policy, null);
    }

    public string Id { get; }

    public TenantConfig Config { get; }

    /// <summary>The x-extproc-tenant value, encoded once (the id alphabet is header-safe).</summary>
    public ReadOnlyMemory<byte> HeaderValue { get; }

    public EffectivePolicy Policy { get; }
}

/// <summary>A configured API key (its hash only), bound to its tenant with its narrowed policy.</summary>
internal sealed class ApiKeyEntry
{
    public ApiKeyEntry(KeyConfig config, Tenant tenant)
    {
        Id = config.Id;
        Hash = config.Hash;
        Tenant = tenant;
        Revoked = config.Revoked;
        ExpiresAt = config.ExpiresAt;
        Policy = new EffectivePolicy(tenant.Config.Policy, config.Scope);
    }

    public string Id { get; }

    public byte[] Hash { get; }

    public Tenant Tenant { get; }

    public bool Revoked { get; }

    public DateTimeOffset? ExpiresAt { get; }

    public EffectivePolicy Policy { get; }
}

/// <summary>Who the caller is, once authenticated: exactly one tenant and one policy.</summary>
internal sealed class CallerIdentity
{
    public CallerIdentity(Tenant tenant, IdentityKind kind, EffectivePolicy policy, string? keyId = null, string? subject = null)
    {
        Tenant = tenant;
        Kind = kind;
        Policy = policy;
        KeyId = keyId;
        Subject = subject;
    }

    public Tenant Tenant { get; }

    public IdentityKind Kind { get; }

    /// <summary>The tenant policy, narrowed by the key scope when a key was used.</summary>
    public EffectivePolicy Policy { get; }

    /// <summary>The public id of the API key (never the key).</summary>
    public string? KeyId { get; }

    /// <summary>JWT <c>sub</c>, SPIFFE id or certificate subject.</summary>
    public string? Subject { get; }
}

/// <summary>
/// A tenant policy, optionally narrowed by a key scope: something is allowed only when both levels
/// allow it, so a key can never widen its tenant (faults.md A8), whatever its config says.
/// </summary>
internal sealed class EffectivePolicy
{
    private readonly PolicyConfig _tenant;
    private readonly PolicyConfig? _scope;
    private byte[]? _permissionHash;

    public EffectivePolicy(PolicyConfig tenant, PolicyConfig? scope)
    {
        _tenant = tenant;
        _scope = scope;
        var limits = new List<string>();
        AddAll(limits, tenant.Limits);
        AddAll(limits, scope?.Limits);
        Limits = limits;
    }

    /// <summary>
    /// SHA-256 of what this policy allows (tenant level and key scope): cache entries are shared only between callers
    /// with the same permissions (faults.md C2). Computed once per policy.
    /// </summary>
    public ReadOnlyMemory<byte> PermissionHash => _permissionHash ??= HashPermissions(_tenant, _scope);

    /// <summary>Limit references of the tenant and of the key: all of them apply.</summary>
    public IReadOnlyList<string> Limits { get; }

    public bool RestrictsModels => _tenant.Models is not null || _scope?.Models is not null;

    public bool AllowsModel(ReadOnlySpan<char> model) => Match(_tenant.Models, model) && Match(_scope?.Models, model);

    public bool AllowsMcpTool(ReadOnlySpan<char> tool) => Match(_tenant.McpTools, tool) && Match(_scope?.McpTools, tool);

    public bool AllowsProvider(string provider) => Listed(_tenant.Providers, provider) && Listed(_scope?.Providers, provider);

    public bool AllowsRegion(string region) => Listed(_tenant.Regions, region) && Listed(_scope?.Regions, region);

    /// <summary>True when the region policy lets a provider tagged with <paramref name="regions"/> be used (one allowed tag suffices).</summary>
    public bool AllowsAnyRegion(IReadOnlyList<string> regions)
    {
        if (_tenant.Regions is null && _scope?.Regions is null)
        {
            return true;
        }

        for (var i = 0; i < regions.Count; i++)
        {
            if (AllowsRegion(regions[i]))
            {
                return true;
            }
        }

        return false;
    }

    public bool AllowsMcpMethod(string method) => Listed(_tenant.McpMethods, method) && Listed(_scope?.McpMethods, method);

    public bool RestrictsMcpPrompts => _tenant.Mcp.Prompts is not null || _scope?.Mcp.Prompts is not null;

    public bool AllowsMcpPrompt(ReadOnlySpan<char> name) => Match(_tenant.Mcp.Prompts, name) && Match(_scope?.Mcp.Prompts, name);

    public bool RestrictsMcpResources => _tenant.Mcp.Resources is not null || _scope?.Mcp.Resources is not null;

    public bool AllowsMcpResource(ReadOnlySpan<char> uri) => Match(_tenant.Mcp.Resources, uri) && Match(_scope?.Mcp.Resources, uri);

    /// <summary>True when tools marked destructive need an explicit entry (policy.mcp.destructiveTools).</summary>
    public bool ChecksDestructiveMcpTools => _tenant.Mcp.DestructiveTools is not null || _scope?.Mcp.DestructiveTools is not null;

    public bool AllowsDestructiveMcpTool(ReadOnlySpan<char> tool) =>
        Match(_tenant.Mcp.DestructiveTools, tool) && Match(_scope?.Mcp.DestructiveTools, tool);

    /// <summary>The smaller argument cap of tenant and key, or null when neither sets one.</summary>
    public int? McpMaxArgumentBytes => (_tenant.Mcp.MaxArgumentBytes, _scope?.Mcp.MaxArgumentBytes) switch
    {
        ({ } a, { } b) => Math.Min(a, b),
        ({ } a, null) => a,
        (null, var b) => b,
    };

    /// <summary>True when a changed tool definition is blocked rather than only logged.</summary>
    public bool BlocksChangedMcpTools =>
        _tenant.Mcp.ToolChanges == McpToolChangeAction.Block || _scope?.Mcp.ToolChanges == McpToolChangeAction.Block;

    /// <summary>True when some tool name is not allowed: LLM tool declarations and calls are then checked.</summary>
    public bool RestrictsTools => _tenant.McpTools is not null || _scope?.McpTools is not null;

    /// <summary>Strip rather than refuse disallowed LLM tools only when neither level asks to refuse.</summary>
    public bool StripsLlmTools => (_tenant.Mcp.LlmTools ?? _scope?.Mcp.LlmTools) == LlmToolAction.Strip
        && _tenant.Mcp.LlmTools != LlmToolAction.Refuse && _scope?.Mcp.LlmTools != LlmToolAction.Refuse;

    public bool BlocksLlmToolCalls => _tenant.Mcp.LlmToolCalls == LlmToolCallAction.Block || _scope?.Mcp.LlmToolCalls == LlmToolCallAction.Block;

    /// <summary>True when tool lists must be read: some tool is hidden, or definitions are pinned.</summary>
    public bool FiltersMcpTools => _tenant.McpTools is not null || _scope?.McpTools is not null || ChecksDestructiveMcpTools
        || _tenant.Mcp.ToolChanges is not null || _scope?.Mcp.ToolChanges is not null;

    private static byte[] HashPermissions(PolicyConfig tenant, PolicyConfig? scope)
    {
        var text = new StringBuilder();
        Append(text, tenant);
        text.Append('|');
        if (scope is not null)
        {
            Append(text, scope);
        }

        return System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()));

        static void Append(StringBuilder text, PolicyConfig policy)
        {
            // Each list framed by its name and count; a null list ("unrestricted") differs from an empty one.
            List(text, "models", policy.Models);
            List(text, "providers", policy.Providers);
            List(text, "regions", policy.Regions);
            List(text, "mcp_tools", policy.McpTools);
            List(text, "mcp_methods", policy.McpMethods);
            List(text, "limits", policy.Limits);
            text.Append("llm_tools=").Append(policy.Mcp.LlmTools).Append(";llm_tool_calls=").Append(policy.Mcp.LlmToolCalls).Append(';');
        }

        static void List(StringBuilder text, string name, IReadOnlyList<string>? items)
        {
            text.Append(name).Append('=');
            if (items is null)
            {
                text.Append("*;");
                return;
            }

            text.Append(items.Count).Append(':');
            foreach (var item in items)
            {
                text.Append(item.Length).Append(':').Append(item);
            }

            text.Append(';');
        }
    }

    private static bool Match(IReadOnlyList<string>? patterns, ReadOnlySpan<char> value) => patterns is null || Glob.MatchesAny(patterns, value);

    private static bool Listed(IReadOnlyList<string>? list, string value)
    {
        if (list is null)
        {
            return true;
        }

        for (var i = 0; i < list.Count; i++)
        {
            if (string.Equals(list[i], value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static void AddAll(List<string> target, IReadOnlyList<string>? source)
    {
        for (var i = 0; source is not null && i < source.Count; i++)
        {
            if (!target.Contains(source[i]))
            {
                target.Add(source[i]);
            }
        }
    }
}
