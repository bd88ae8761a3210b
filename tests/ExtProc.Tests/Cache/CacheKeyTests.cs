using System.Text;
using ExtProc.Protocols;
using ExtProc.Stages.Cache;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using Xunit.Abstractions;

namespace ExtProc.Tests.Cache;

/// <summary>The cache key: tenant and permission scoping (C1, C2), output-affecting fields (C3), canonical form (C4).</summary>
public sealed class CacheKeyTests
{
    private static readonly byte[] Permissions = new byte[32];
    private readonly ITestOutputHelper _output;

    public CacheKeyTests(ITestOutputHelper output) => _output = output;

    private static CacheScope Scope(string tenant = "acme", ProtocolKind protocol = ProtocolKind.OpenAiChat, byte[]? permissions = null, string version = "v1") =>
        new(tenant, version, permissions ?? Permissions, "gpt-4o", protocol, "/v1/chat/completions", null);

    private static CacheKey Key(string body, CacheScope? scope = null)
    {
        Assert.True(CacheKeyBuilder.TryCompute(scope ?? Scope(), Encoding.UTF8.GetBytes(body), out var key), body);
        return key;
    }

    private static string Hex(CacheKey key) => Convert.ToHexString(key.Hash);

    [Fact]
    public void TryCompute_RandomRequestsOfTwoTenants_NeverShareAKey()
    {
        // C1: 10^5 randomized requests, half sent by each tenant, many identical across tenants.
        var json = new RandomJson(1);
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        var crossTenant = 0;
        for (var i = 0; i < 50_000; i++)
        {
            var body = """{"model":"gpt-4o","temperature":0,"messages":[{"role":"user","content":""" + json.Write(json.Value(2), vary: false) + "}]}";
            foreach (var tenant in (string[])["acme", "beta"])
            {
                var key = Key(body, Scope(tenant));
                if (keys.TryGetValue(key.StoreKey(tenant), out var owner) && owner != tenant)
                {
                    crossTenant++;
                }

                keys[key.StoreKey(tenant)] = tenant;
                Assert.StartsWith(tenant + ":", key.StoreKey(tenant), StringComparison.Ordinal);
            }
        }

        var sharedHashes = keys.Keys.Select(k => k[(k.IndexOf(':') + 1)..]).GroupBy(h => h).Count(g => g.Count() > 1);
        _output.WriteLine($"C1: 100,000 randomized requests over 2 tenants: cross-tenant hits {crossTenant}, key hashes shared across tenants {sharedHashes}");
        Assert.Equal(0, crossTenant);
        Assert.Equal(0, sharedHashes);
    }

    [Fact]
    public void PermissionHash_KeysWithDifferentScopes_DifferAndSameScopesMatch()
    {
        // C2: the permission set is part of the key.
        var tenant = new PolicyConfig(["gpt-*"], null, null, null, null, null);
        var wide = new EffectivePolicy(tenant, null);
        var narrow = new EffectivePolicy(tenant, new PolicyConfig(["gpt-4o"], null, null, null, null, null));
        var narrowAgain = new EffectivePolicy(tenant, new PolicyConfig(["gpt-4o"], null, null, null, null, null));
        var noTools = new EffectivePolicy(tenant, new PolicyConfig(null, null, null, [], null, null));
        var unrestrictedTools = new EffectivePolicy(tenant, new PolicyConfig(null, null, null, null, null, null));

        var hashes = new[] { wide, narrow, noTools }.Select(p => Convert.ToHexString(p.PermissionHash.Span)).ToArray();
        Assert.Equal(3, hashes.Distinct().Count());
        Assert.Equal(Convert.ToHexString(narrow.PermissionHash.Span), Convert.ToHexString(narrowAgain.PermissionHash.Span));
        Assert.NotEqual(Convert.ToHexString(noTools.PermissionHash.Span), Convert.ToHexString(unrestrictedTools.PermissionHash.Span));

        const string Body = """{"model":"gpt-4o","temperature":0,"messages":[{"role":"user","content":"hi"}]}""";
        var crossPolicy = 0;
        foreach (var (a, b) in new[] { (wide, narrow), (narrow, noTools), (wide, noTools) })
        {
            crossPolicy += Hex(Key(Body, Scope(permissions: a.PermissionHash.ToArray()))) == Hex(Key(Body, Scope(permissions: b.PermissionHash.ToArray()))) ? 1 : 0;
        }

        _output.WriteLine($"C2: cross-policy hits {crossPolicy} of 3 permission-set pairs");
        Assert.Equal(0, crossPolicy);
        Assert.Equal(Hex(Key(Body, Scope(permissions: narrow.PermissionHash.ToArray()))), Hex(Key(Body, Scope(permissions: narrowAgain.PermissionHash.ToArray()))));
    }

    [Fact]
    public void TryCompute_OtherPolicyVersion_IsAnotherKey()
    {
        // C7: a reload (new key revoked, policy changed) makes a new snapshot version, hence new keys.
        const string Body = """{"model":"gpt-4o","temperature":0,"messages":[{"role":"user","content":"hi"}]}""";
        Assert.NotEqual(Hex(Key(Body, Scope(version: "a1"))), Hex(Key(Body, Scope(version: "a2"))));
    }

    public static TheoryData<string, string, string> OutputAffecting => new()
    {
        { nameof(ProtocolKind.OpenAiChat), "tools", """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]""" },
        { nameof(ProtocolKind.OpenAiChat), "tool_choice", "\"required\"" },
        { nameof(ProtocolKind.OpenAiChat), "response_format", """{"type":"json_object"}""" },
        { nameof(ProtocolKind.OpenAiChat), "temperature", "0.0" },
        { nameof(ProtocolKind.OpenAiChat), "seed", "42" },
        { nameof(ProtocolKind.OpenAiChat), "n", "2" },
        { nameof(ProtocolKind.OpenAiChat), "stream", "false" },
        { nameof(ProtocolKind.OpenAiChat), "max_completion_tokens", "10" },
        { nameof(ProtocolKind.OpenAiChat), "reasoning_effort", "\"low\"" },
        { nameof(ProtocolKind.OpenAiChat), "x_new_vendor_field", "1" },
        { nameof(ProtocolKind.AnthropicMessages), "system", "\"Be brief.\"" },
        { nameof(ProtocolKind.AnthropicMessages), "thinking", """{"type":"enabled","budget_tokens":1024}""" },
        { nameof(ProtocolKind.AnthropicMessages), "tool_choice", """{"type":"any"}""" },
        { nameof(ProtocolKind.AnthropicMessages), "tools", """[{"name":"get_weather","input_schema":{"type":"object"}}]""" },
        { nameof(ProtocolKind.AnthropicMessages), "stop_sequences", """["END"]""" },
        { nameof(ProtocolKind.Gemini), "generationConfig", """{"temperature":0,"seed":7}""" },
        { nameof(ProtocolKind.Gemini), "systemInstruction", """{"parts":[{"text":"Be brief."}]}""" },
        { nameof(ProtocolKind.Gemini), "toolConfig", """{"functionCallingConfig":{"mode":"ANY"}}""" },
    };

    [Theory]
    [MemberData(nameof(OutputAffecting))]
    public void TryCompute_OutputAffectingFieldAddedOrChanged_IsAnotherKey(string protocolName, string field, string value)
    {
        var protocol = Enum.Parse<ProtocolKind>(protocolName);
        // C3 as a property: over random bases, adding the field, or changing its value, never keeps the key.
        var json = new RandomJson(field.Length);
        var wrongHits = 0;
        for (var i = 0; i < 500; i++)
        {
            var content = json.Write(json.Value(2), vary: false);
            var temperature = field != "temperature";
            var baseBody = Base(protocol, content, "", temperature);
            var with = Base(protocol, content, $"\"{field}\":{value},", temperature);
            var changed = Base(protocol, content, $"\"{field}\":{json.Write(json.Value(1), vary: false)},", temperature);
            var scope = Scope(protocol: protocol);
            var keys = new[] { Hex(Key(baseBody, scope)), Hex(Key(with, scope)), Hex(Key(changed, scope)) };
            wrongHits += 3 - keys.Distinct().Count() - (with == changed ? 1 : 0);
        }

        _output.WriteLine($"C3 ({protocol}, {field}): wrong hits {wrongHits} in 1,500 keys");
        Assert.Equal(0, wrongHits);
    }

    [Theory]
    [InlineData(nameof(ProtocolKind.OpenAiChat), "user", "\"end-user-17\"")]
    [InlineData(nameof(ProtocolKind.OpenAiChat), "metadata", """{"run":"a"}""")]
    [InlineData(nameof(ProtocolKind.OpenAiChat), "prompt_cache_key", "\"k\"")]
    [InlineData(nameof(ProtocolKind.AnthropicMessages), "metadata", """{"user_id":"u1"}""")]
    public void TryCompute_IgnoredField_KeepsTheKey(string protocolName, string field, string value)
    {
        var protocol = Enum.Parse<ProtocolKind>(protocolName);
        Assert.Equal(Hex(Key(Base(protocol, "\"hi\"", ""), Scope(protocol: protocol))), Hex(Key(Base(protocol, "\"hi\"", $"\"{field}\":{value},"), Scope(protocol: protocol))));

        // A case variant of an ignored name is not the ignored field: it is in the key.
        var variant = char.ToUpperInvariant(field[0]) + field[1..];
        Assert.NotEqual(Hex(Key(Base(protocol, "\"hi\"", ""), Scope(protocol: protocol))), Hex(Key(Base(protocol, "\"hi\"", $"\"{variant}\":{value},"), Scope(protocol: protocol))));
    }

    [Fact]
    public void TryCompute_EquivalentSpellings_SameKey()
    {
        // C4: member order, whitespace and escapes do not matter; 10,000 random documents, two spellings each.
        var json = new RandomJson(4);
        var hits = 0;
        const int Pairs = 10_000;
        for (var i = 0; i < Pairs; i++)
        {
            var document = json.Object(3, json.Random.Next(1, 6));
            document.Add(new("model", "gpt-4o"));
            var plain = json.Write(document, vary: false);
            var varied = json.Write(document, vary: true);
            hits += Hex(Key(plain)) == Hex(Key(varied)) ? 1 : 0;
        }

        _output.WriteLine($"C4: equivalent pairs with the same key {hits}/{Pairs} ({hits * 100.0 / Pairs:0.##}%)");
        Assert.Equal(Pairs, hits);
    }

    [Fact]
    public void Canonicalize_KnownPair_IsIdentical()
    {
        var a = CacheKeyBuilder.Canonicalize(ProtocolKind.OpenAiChat, """{"model":"m","messages":[{"role":"user","content":"é\"x"}],"temperature":0}"""u8);
        var b = CacheKeyBuilder.Canonicalize(ProtocolKind.OpenAiChat, """ { "temperature" : 0 , "messages":[{"content":"\u00e9\u0022x","role":"user"}], "model":"m" } """u8);
        Assert.NotNull(a);
        Assert.Equal(a, b);
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","messages":[]}""", true)]
    [InlineData("""{"model":"gpt-4o","temperature":0,"messages":[]}""", false)]
    [InlineData("""{"model":"gpt-4o","temperature":0.0,"messages":[]}""", false)]
    [InlineData("""{"model":"gpt-4o","temperature":0.7,"messages":[]}""", true)]
    public void TryCompute_Temperature_DecidesSampled(string body, bool sampled) => Assert.Equal(sampled, Key(body).Sampled);

    [Theory]
    [InlineData("""{"contents":[],"generationConfig":{"temperature":0}}""", false)]
    [InlineData("""{"contents":[],"generation_config":{"temperature":0}}""", false)]
    [InlineData("""{"contents":[],"generationConfig":{"topK":1}}""", true)]
    [InlineData("""{"contents":[],"temperature":0}""", true)]
    public void TryCompute_GeminiTemperature_ReadFromGenerationConfig(string body, bool sampled) =>
        Assert.Equal(sampled, Key(body, Scope(protocol: ProtocolKind.Gemini)).Sampled);

    private static string Base(ProtocolKind protocol, string content, string extra, bool temperature = true)
    {
        var t = temperature ? "\"temperature\":0," : "";
        return protocol switch
        {
            ProtocolKind.AnthropicMessages => "{" + extra + t + "\"model\":\"claude\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":" + content + "}]}",
            ProtocolKind.Gemini => "{" + extra + "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":" + content + "}]}]}",
            _ => "{" + extra + t + "\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":" + content + "}]}",
        };
    }
}
