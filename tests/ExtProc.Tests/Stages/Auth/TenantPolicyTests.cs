using Envoy.Service.ExtProc.V3;
using ExtProc.Tests.Tenancy;
using static ExtProc.Tests.Engine.EngineTestKit;
using static ExtProc.Tests.Stages.Auth.AuthenticationStageTests;
using static ExtProc.Tests.Tenancy.TestTenancy;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>Tenant policy and key scope, applied before any body goes upstream (issue 3 §6, faults.md A8).</summary>
public sealed class TenantPolicyTests
{
    private static readonly global::ExtProc.Pipeline.PipelineSnapshot Snapshot = BuildPipeline(BaseYaml());

    private static async Task<ProcessingResponse> BodyAsync(string path, string key, string body)
    {
        var (processor, writer) = Processor(Snapshot);
        await processor.HandleAsync(RequestHeaders(path, extra: ("x-api-key", key)));
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, writer.Responses[0].ResponseCase);
        await processor.HandleAsync(RequestBody(Utf8(body), endOfStream: true));
        return writer.Responses[^1];
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"gpt-4o-mini","messages":[]}""")]
    [InlineData("/v1/chat/completions", """{"messages":[],"model":"gpt-4o"}""")]
    [InlineData("/v1/messages", """{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}""")]
    public async Task ModelWithinTenantPolicy_BodyGoesOn(string path, string body)
    {
        var reply = await BodyAsync(path, AcmeKey, body);

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, reply.ResponseCase);
    }

    [Fact]
    public async Task ModelOutsideTenantPolicy_403ModelNotAllowed()
    {
        var reply = await BodyAsync("/v1/chat/completions", AcmeKey, """{"model":"o3-pro","messages":[]}""");

        AssertError(reply, 403, "model_not_allowed");
    }

    [Fact]
    public async Task KeyScope_NarrowsTenantPolicy()
    {
        var allowed = await BodyAsync("/v1/chat/completions", AcmeNarrowKey, """{"model":"gpt-4o-mini","messages":[]}""");
        var tenantAllowsKeyNot = await BodyAsync("/v1/chat/completions", AcmeNarrowKey, """{"model":"gpt-4o","messages":[]}""");

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, allowed.ResponseCase);
        AssertError(tenantAllowsKeyNot, 403, "model_not_allowed");
    }

    [Fact]
    public async Task AnthropicRoute_DeniedModel_403InAnthropicDialect()
    {
        var reply = await BodyAsync("/v1/messages", AcmeNarrowKey, """{"model":"claude-opus-4","max_tokens":1,"messages":[]}""");

        Assert.Equal(403, (int)reply.ImmediateResponse.Status.Code);
        Assert.Contains("\"type\":\"permission_error\"", reply.ImmediateResponse.Body.ToStringUtf8());
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","model":"o3-pro"}""", 400, "duplicate_key")]
    [InlineData("""{"model":"gpt-4o","mod\u0065l":"o3-pro"}""", 400, "duplicate_key")]
    [InlineData("""{"model":"gpt-4o","MODEL":"o3-pro"}""", 400, "ambiguous_field")]
    [InlineData("""{"Model":"o3-pro"}""", 400, "ambiguous_field")]
    [InlineData("""{"model":7}""", 400, "invalid_field")]
    [InlineData("""{"messages":[]}""", 400, "missing_field")]
    [InlineData("""{"model":"gpt-4o",}""", 400, "invalid_json")]
    [InlineData("""{"model":"gpt-4o"} {}""", 400, "invalid_json")]
    [InlineData("""["model"]""", 400, "invalid_json")]
    public async Task ModelField_ReadStrictlyByTheParseStageBeforePolicy(string body, int status, string code)
    {
        var reply = await BodyAsync("/v1/chat/completions", AcmeKey, body);

        AssertError(reply, status, code);
    }

    [Theory]
    [InlineData("/v1beta/models/gemini-2.0-flash:generateContent", true)]
    [InlineData("/v1beta/models/gemini-1.5-pro:generateContent", false)]
    [InlineData("/v1beta/models/GEMINI-2.0-flash:streamGenerateContent", true)]
    public async Task Gemini_ModelFromPath_DecidedInHeadersPhase(string path, bool allowed)
    {
        var reply = await HeadersAsync(Snapshot, path, extra: ("x-goog-api-key", AcmeKey));

        if (allowed)
        {
            Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
        }
        else
        {
            Assert.Equal(403, (int)reply.ImmediateResponse.Status.Code);
            Assert.Contains("PERMISSION_DENIED", reply.ImmediateResponse.Body.ToStringUtf8());
        }
    }

    [Fact]
    public void EffectivePolicy_KeyCannotWidenTenant_EvenIfConfigured()
    {
        var tenant = new global::ExtProc.Tenancy.Config.PolicyConfig(["gpt-4o*"], ["openai"], null, ["echo"], ["tools/call"], ["t"]);
        var wider = new global::ExtProc.Tenancy.Config.PolicyConfig(["*"], ["openai", "anthropic"], ["eu"], ["*"], ["tools/call", "tools/list"], ["k"]);

        var policy = new global::ExtProc.Tenancy.EffectivePolicy(tenant, wider);

        Assert.False(policy.AllowsModel("o3"));
        Assert.True(policy.AllowsModel("gpt-4o-mini"));
        Assert.False(policy.AllowsProvider("anthropic"));
        Assert.False(policy.AllowsMcpTool("get-env"));
        Assert.False(policy.AllowsMcpMethod("tools/list"));
        Assert.Equal(["t", "k"], policy.Limits);
    }
}
