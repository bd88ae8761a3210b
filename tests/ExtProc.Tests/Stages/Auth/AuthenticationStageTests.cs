using System.Text.Json;
using Envoy.Service.ExtProc.V3;
using ExtProc.Tests.Tenancy;
using static ExtProc.Tests.Engine.EngineTestKit;
using static ExtProc.Tests.Tenancy.TestTenancy;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>API keys, resolution rules and errors in the caller's dialect, message by message (faults.md A1-A3, A9).</summary>
public sealed class AuthenticationStageTests
{
    private static readonly global::ExtProc.Pipeline.PipelineSnapshot Snapshot = BuildPipeline(BaseYaml());

    [Theory]
    [InlineData("authorization", "Bearer {0}")]
    [InlineData("authorization", "bearer   {0}  ")]
    [InlineData("x-api-key", "{0}")]
    [InlineData("api-key", "{0}")]
    [InlineData("x-goog-api-key", "{0}")]
    public async Task RequestHeaders_ValidKeyInAnyAcceptedHeader_TenantResolvedCredentialRemovedTenantHeaderSet(string header, string format)
    {
        var reply = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: (header, string.Format(System.Globalization.CultureInfo.InvariantCulture, format, AcmeKey)));

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
        var mutation = reply.RequestHeaders.Response.HeaderMutation;
        Assert.Contains(header, mutation.RemoveHeaders);
        Assert.Equal("acme", Header(mutation, "x-extproc-tenant"));
        var metadata = reply.DynamicMetadata.Fields["extproc"].StructValue.Fields;
        Assert.Equal("acme", metadata["tenant"].StringValue);
        Assert.Equal("acme-main", metadata["key_id"].StringValue);
        Assert.Equal("api_key", metadata["identity"].StringValue);
    }

    [Fact]
    public async Task RequestHeaders_SameKeyInTwoHeaders_OneCredentialBothRemoved()
    {
        var reply = await HeadersAsync(Snapshot, "/v1/messages", extra: [("x-api-key", AcmeKey), ("authorization", "Bearer " + AcmeKey)]);

        var mutation = reply.RequestHeaders.Response.HeaderMutation;
        Assert.Contains("x-api-key", mutation.RemoveHeaders);
        Assert.Contains("authorization", mutation.RemoveHeaders);
    }

    [Fact]
    public async Task A9_SpoofedTenantHeader_ReplacedByResolvedTenant()
    {
        var reply = await HeadersAsync(Snapshot, "/v1/chat/completions",
            extra: [("x-extproc-tenant", "beta"), ("X-ExtProc-Tenant", "beta"), ("x-api-key", AcmeKey), ("x-gateway-tenant", "beta")]);

        var mutation = reply.RequestHeaders.Response.HeaderMutation;
        var tenantSets = mutation.SetHeaders.Where(h => h.Header.Key == "x-extproc-tenant").ToList();
        Assert.Equal("acme", Assert.Single(tenantSets).Header.RawValue.ToStringUtf8());
        Assert.Equal("acme", reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["tenant"].StringValue);
    }

    [Fact]
    public async Task A9_SpoofedTenantHeaderWithoutCredentials_401AndNeverTrusted()
    {
        var reply = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: ("x-extproc-tenant", "acme"));

        AssertError(reply, 401, "missing_credentials");
    }

    [Theory]
    [InlineData("authorization", "authorization")]
    [InlineData("x-api-key", "x-api-key")]
    public async Task A1_RepeatedCredentialHeader_400AmbiguousCredentials(string first, string second)
    {
        var value = first == "authorization" ? "Bearer " + AcmeKey : AcmeKey;
        var reply = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: [(first, value), (second, value)]);

        AssertError(reply, 400, "ambiguous_credentials");
    }

    [Fact]
    public async Task A1_AuthorizationPlusDifferentApiKey_400AmbiguousCredentials()
    {
        var reply = await HeadersAsync(Snapshot, "/v1/messages", extra: [("authorization", "Bearer " + AcmeKey), ("x-api-key", BetaKey)]);

        AssertError(reply, 400, "ambiguous_credentials", anthropic: true);
    }

    [Theory]
    [InlineData("x_api_key")]
    [InlineData("api_key")]
    [InlineData("x_goog_api_key")]
    [InlineData("x-api_key")]
    public async Task A2_UnderscoreVariant_RefusedNeverAcceptedAsCredential(string header)
    {
        var alone = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: (header, AcmeKey));
        var withValid = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: [("x-api-key", AcmeKey), (header, BetaKey)]);

        AssertError(alone, 400, "ambiguous_credentials");
        AssertError(withValid, 400, "ambiguous_credentials");
    }

    public static TheoryData<string> InvalidKeys => new()
    {
        "xp_acme-main_" + new string('a', 52),                 // known id, wrong secret
        AcmeRevokedKey,                                         // revoked in config
        AcmeExpiredKey,                                         // expiresAt in the past
        global::ExtProc.Tenancy.Keys.ApiKeyFormat.NewKey("nobody"),             // unknown id
        "sk-proj-" + Guid.NewGuid().ToString("N"),              // not our format
        "xp_" + new string('a', 300),                           // oversized
        AcmeKey + "x",                                          // one character longer
    };

    [Theory]
    [MemberData(nameof(InvalidKeys))]
    public async Task A3_UnknownRevokedExpiredOrWrongKey_401InvalidApiKeyWithChallenge(string key)
    {
        var reply = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + key));

        AssertError(reply, 401, "invalid_api_key");
        Assert.StartsWith("Bearer realm=\"extproc\"", Header(reply.ImmediateResponse.Headers, "www-authenticate"));
        Assert.DoesNotContain(key, reply.ImmediateResponse.Body.ToStringUtf8());
    }

    [Fact]
    public async Task A3_RandomKeys_NoFalseAccepts()
    {
        for (var i = 0; i < 500; i++)
        {
            var key = i % 2 == 0 ? global::ExtProc.Tenancy.Keys.ApiKeyFormat.NewKey("acme-main") : global::ExtProc.Tenancy.Keys.ApiKeyFormat.NewKey($"key{i}");
            var reply = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: ("x-api-key", key));
            Assert.Equal(401, (int)reply.ImmediateResponse.Status.Code);
        }
    }

    [Fact]
    public async Task RequestHeaders_NoCredential_401MissingCredentialsInOpenAiDialect()
    {
        var reply = await HeadersAsync(Snapshot, "/v1/chat/completions");

        AssertError(reply, 401, "missing_credentials");
        Assert.Equal("Bearer realm=\"extproc\"", Header(reply.ImmediateResponse.Headers, "www-authenticate"));
        Assert.Equal("extproc_missing_credentials", reply.ImmediateResponse.Details);
    }

    [Fact]
    public async Task RequestHeaders_BasicAuthorization_401UnsupportedAuthScheme()
    {
        var reply = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: ("authorization", "Basic dXNlcjpwYXNz"));

        AssertError(reply, 401, "unsupported_auth_scheme");
    }

    [Theory]
    [InlineData("/v1beta/models/gemini-2.0-flash:generateContent?key=abc")]
    [InlineData("/v1/chat/completions?api_key=abc")]
    [InlineData("/mcp?access_token=abc")]
    public async Task RequestHeaders_CredentialInQuery_400(string path)
    {
        var reply = await HeadersAsync(Snapshot, path, extra: ("x-api-key", AcmeKey));

        Assert.Equal(400, (int)reply.ImmediateResponse.Status.Code);
        Assert.Contains("credentials_in_query", reply.ImmediateResponse.Body.ToStringUtf8());
    }

    [Fact]
    public async Task Errors_InEachDialect_CarryCodeAndRequestId()
    {
        var anthropic = await HeadersAsync(Snapshot, "/v1/messages");
        var gemini = await HeadersAsync(Snapshot, "/v1beta/models/gemini-2.0-flash:generateContent");
        var mcp = await HeadersAsync(Snapshot, "/mcp");

        using (var json = JsonDocument.Parse(anthropic.ImmediateResponse.Body.Memory))
        {
            Assert.Equal("error", json.RootElement.GetProperty("type").GetString());
            Assert.Equal("authentication_error", json.RootElement.GetProperty("error").GetProperty("type").GetString());
            Assert.Equal("req-1", json.RootElement.GetProperty("request_id").GetString());
        }

        using (var json = JsonDocument.Parse(gemini.ImmediateResponse.Body.Memory))
        {
            var error = json.RootElement.GetProperty("error");
            Assert.Equal(401, error.GetProperty("code").GetInt32());
            Assert.Equal("UNAUTHENTICATED", error.GetProperty("status").GetString());
            Assert.Equal("missing_credentials", error.GetProperty("details")[0].GetProperty("reason").GetString());
        }

        using (var json = JsonDocument.Parse(mcp.ImmediateResponse.Body.Memory))
        {
            Assert.Equal("2.0", json.RootElement.GetProperty("jsonrpc").GetString());
            Assert.Equal("missing_credentials", json.RootElement.GetProperty("error").GetProperty("data").GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task UngovernedRequest_PassesWithoutAuthentication_ByDefault()
    {
        var reply = await HeadersAsync(Snapshot, "/static/app.js", method: "GET");

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
    }

    [Fact]
    public async Task UngovernedRequest_AuthenticateUngoverned_401WithoutCredentials()
    {
        var snapshot = BuildPipeline(BaseYaml("identity:\n  authenticateUngoverned: true\n"));

        var reply = await HeadersAsync(snapshot, "/static/app.js", method: "GET");

        Assert.Equal(401, (int)reply.ImmediateResponse.Status.Code);
    }

    [Fact]
    public async Task AnonymousTenantConfigured_NoCredentialIsThatTenant_WrongCredentialStill401()
    {
        var snapshot = BuildPipeline(TestTenancy.OpenYaml);

        var none = await HeadersAsync(snapshot, "/v1/chat/completions");
        var wrong = await HeadersAsync(snapshot, "/v1/chat/completions", extra: ("x-api-key", AcmeKey[..^2] + "zz"));

        Assert.Equal("public", Header(none.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
        Assert.Equal("anonymous", none.DynamicMetadata.Fields["extproc"].StructValue.Fields["identity"].StringValue);
        AssertError(wrong, 401, "invalid_api_key");
    }

    [Fact]
    public async Task KeyOfOneTenant_NeverResolvesToAnother()
    {
        var acme = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: ("x-api-key", AcmeKey));
        var beta = await HeadersAsync(Snapshot, "/v1/chat/completions", extra: ("x-api-key", BetaKey));

        Assert.Equal("acme", Header(acme.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
        Assert.Equal("beta", Header(beta.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
    }

    internal static void AssertError(ProcessingResponse reply, int status, string code, bool anthropic = false)
    {
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, reply.ResponseCase);
        Assert.Equal(status, (int)reply.ImmediateResponse.Status.Code);
        using var json = JsonDocument.Parse(reply.ImmediateResponse.Body.Memory);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        if (!anthropic)
        {
            Assert.Equal("req-1", error.GetProperty("request_id").GetString());
        }

        Assert.Equal(code, Header(reply.ImmediateResponse.Headers, "x-extproc-error"));
    }
}
