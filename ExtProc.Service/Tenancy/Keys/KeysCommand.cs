using System.Globalization;
using ExtProc.Tenancy.Config;

namespace ExtProc.Tenancy.Keys;

/// <summary>
/// <c>ExtProc.Service keys create --tenant acme [--id ID] [--scope models=a,b] [--expires T] [--config FILE]</c>:
/// makes a key, prints it once, and prints the config entry to paste (its hash only). With a config
/// file (--config or ExtProc__ConfigPath) the tenant must exist and the scope must lie within the
/// tenant policy: a key can never be wider than its tenant (faults.md A8, scope_exceeds_creator).
/// </summary>
internal static class KeysCommand
{
    public const int Ok = 0;
    public const int Usage = 2;
    public const int Refused = 3;

    private const string Help = """
        Usage:
          keys create --tenant <id> [--id <key-id>] [--description <text>] [--expires <ISO 8601>]
                      [--scope models=<glob>,<glob>] [--scope providers=<a>,<b>] [--scope regions=<a>]
                      [--scope mcp.tools=<glob>] [--scope mcp.methods=<m>] [--scope limits=<ref>]
                      [--config <file>]
          keys hash <key>      print the hash entry of an existing key (reads the key from stdin when <key> is -)
        The key is printed once on stdout; store it in a secret manager. Only its hash goes into the config.
        """;

    public static int Run(string[] args, TextWriter output, TextWriter error, TextReader? input = null)
    {
        if (args.Length >= 2 && args[1] == "hash")
        {
            var existing = args.Length >= 3 && args[2] != "-" ? args[2] : input?.ReadLine()?.Trim();
            if (string.IsNullOrEmpty(existing))
            {
                error.WriteLine(Help);
                return Usage;
            }

            output.WriteLine(ApiKeyFormat.HashText(existing));
            return Ok;
        }

        if (args.Length < 2 || args[1] != "create")
        {
            error.WriteLine(Help);
            return Usage;
        }

        string? tenant = null, id = null, description = null, configPath = Environment.GetEnvironmentVariable("ExtProc__ConfigPath");
        DateTimeOffset? expires = null;
        var scope = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        for (var i = 2; i < args.Length; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Length)
            {
                error.WriteLine($"{name} needs a value.");
                return Usage;
            }

            var value = args[++i];
            switch (name)
            {
                case "--tenant":
                    tenant = value;
                    break;
                case "--id":
                    id = value;
                    break;
                case "--description":
                    if (TenancyConfigParser.HasControl(value))
                    {
                        error.WriteLine("--description may not contain control characters.");
                        return Usage;
                    }

                    description = value;
                    break;
                case "--config":
                    configPath = value;
                    break;
                case "--expires":
                    if (!DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
                    {
                        error.WriteLine("--expires must be an ISO 8601 timestamp, e.g. 2027-01-01T00:00:00Z.");
                        return Usage;
                    }

                    expires = at.ToUniversalTime();
                    break;
                case "--scope":
                    var eq = value.IndexOf('=');
                    var field = eq > 0 ? value[..eq] : "";
                    if (field is not ("models" or "providers" or "regions" or "mcp.tools" or "mcp.methods" or "limits"))
                    {
                        error.WriteLine("--scope takes models=, providers=, regions=, mcp.tools=, mcp.methods= or limits= followed by a comma-separated list.");
                        return Usage;
                    }

                    if (!scope.TryGetValue(field, out var list))
                    {
                        scope[field] = list = [];
                    }

                    foreach (var item in value[(eq + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        list.Add(item);
                    }

                    break;
                default:
                    error.WriteLine($"Unknown option {name}.");
                    error.WriteLine(Help);
                    return Usage;
            }
        }

        if (tenant is null || !TenancyConfigParser.IsValidTenantId(tenant))
        {
            error.WriteLine("--tenant is required: the tenant id the key belongs to.");
            return Usage;
        }

        id ??= ApiKeyFormat.NewId();
        if (!ApiKeyFormat.IsValidId(id))
        {
            error.WriteLine("--id must be 3 to 32 characters of a-z, 0-9 and '-'.");
            return Usage;
        }

        var requested = new PolicyConfig(Get("models"), Get("providers"), Get("regions"), Get("mcp.tools"), Get("mcp.methods"), Get("limits"));
        if (!string.IsNullOrEmpty(configPath))
        {
            var refusal = CheckAgainstConfig(configPath, tenant, id, requested);
            if (refusal is not null)
            {
                error.WriteLine(refusal);
                return Refused;
            }
        }

        var key = ApiKeyFormat.NewKey(id);
        output.WriteLine(key);
        output.WriteLine();
        output.WriteLine($"# The key above is shown once. Paste this under tenants.{tenant}.keys:");
        output.WriteLine($"      - id: {id}");
        output.WriteLine($"        hash: \"{ApiKeyFormat.HashText(key)}\"");
        if (description is not null)
        {
            output.WriteLine($"        description: \"{description.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}\"");
        }

        if (expires is { } when)
        {
            output.WriteLine($"        expiresAt: \"{when.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)}\"");
        }

        if (scope.Count > 0)
        {
            output.WriteLine("        scope:");
            foreach (var field in (string[])["models", "providers", "regions", "limits"])
            {
                WriteList(output, "          ", field, Get(field));
            }

            if (requested.McpTools is not null || requested.McpMethods is not null)
            {
                output.WriteLine("          mcp:");
                WriteList(output, "            ", "tools", requested.McpTools);
                WriteList(output, "            ", "methods", requested.McpMethods);
            }
        }

        return Ok;

        List<string>? Get(string field) => scope.TryGetValue(field, out var values) ? values : null;
    }

    private static string? CheckAgainstConfig(string path, string tenantId, string keyId, PolicyConfig requested)
    {
        var errors = new ConfigErrors();
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"cannot read {path}: {ex.Message}";
        }

        var config = TenancyConfigParser.Parse(text, errors);
        if (config is null)
        {
            return $"{path} is not valid:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", errors.All);
        }

        TenantConfig? tenant = null;
        foreach (var candidate in config.Tenants)
        {
            foreach (var existing in candidate.Keys)
            {
                if (existing.Id == keyId)
                {
                    return $"key id '{keyId}' is already used by tenant '{candidate.Id}'.";
                }
            }

            if (candidate.Id == tenantId)
            {
                tenant = candidate;
            }
        }

        if (tenant is null)
        {
            return $"tenant '{tenantId}' is not defined in {path}.";
        }

        var problems = TenancyConfigParser.ScopeProblems(tenant.Policy, requested);
        return problems.Count == 0
            ? null
            : "scope_exceeds_creator: a key cannot be wider than its tenant." + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", problems);
    }

    private static void WriteList(TextWriter output, string indent, string name, IReadOnlyList<string>? values)
    {
        if (values is null)
        {
            return;
        }

        output.Write($"{indent}{name}: [");
        for (var i = 0; i < values.Count; i++)
        {
            output.Write(i == 0 ? "" : ", ");
            output.Write('"');
            output.Write(values[i].Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal));
            output.Write('"');
        }

        output.WriteLine("]");
    }
}
