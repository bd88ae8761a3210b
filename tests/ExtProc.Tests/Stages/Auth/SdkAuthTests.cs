using System.ClientModel;
using System.ClientModel.Primitives;
using Anthropic;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Tenancy;
using OpenAI;
using OpenAI.Chat;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>
/// Real OpenAI and Anthropic .NET SDK clients against the real ExtProc process (through
/// <see cref="MiniDataPlane"/>): a valid key reaches the upstream with the credential removed and the
/// tenant header added; missing, wrong, revoked or out-of-scope keys become each SDK's own exception
/// type carrying our code and message.
/// </summary>
public sealed class SdkAuthTests : IAsyncLifetime
{
    private ExtProcServer _server = null!;
    private MiniDataPlane _plane = null!;

    public async Task InitializeAsync()
    {
        _server = await ExtProcServer.StartAsync(configYaml: TestTenancy.BaseYaml()); // no anonymous tenant
        _plane = await MiniDataPlane.StartAsync(_server.Client);
    }

    public async Task DisposeAsync()
    {
        await _plane.DisposeAsync();
        await _server.DisposeAsync();
    }

    private ChatClient OpenAi(string key, string model = "gpt-4o-mini") => new(model, new ApiKeyCredential(key), new OpenAIClientOptions
    {
        Endpoint = new Uri(_plane.BaseUrl, "/v1"),
        RetryPolicy = new ClientRetryPolicy(0),
    });

    private AnthropicClient Anthropic(string key) => new() { ApiKey = key, BaseUrl = _plane.BaseUrl.ToString().TrimEnd('/'), MaxRetries = 0 };

    private static MessageCreateParams Message(string model = "claude-sonnet-4-5") => new()
    {
        Model = model,
        MaxTokens = 16,
        Messages = [new UserMessageParam { Content = "Hi" }],
    };

    [Fact]
    public async Task OpenAiSdk_ValidKey_ReachesUpstreamWithoutCredentialWithTenantHeader()
    {
        var completion = await OpenAi(TestTenancy.AcmeKey).CompleteChatAsync("Hi");

        Assert.Equal("ok", completion.Value.Content[0].Text);
        var upstream = Assert.Single(_plane.Upstream);
        Assert.False(upstream.ContainsKey("authorization"));
        Assert.Equal("acme", upstream["x-extproc-tenant"]);
    }

    [Fact]
    public async Task AnthropicSdk_ValidKey_ReachesUpstreamWithoutCredentialWithTenantHeader()
    {
        var message = await Anthropic(TestTenancy.AcmeKey).Messages.Create(Message());

        Assert.Equal("msg_1", message.ID);
        var upstream = Assert.Single(_plane.Upstream);
        Assert.False(upstream.ContainsKey("x-api-key"));
        Assert.False(upstream.ContainsKey("authorization"));
        Assert.Equal("acme", upstream["x-extproc-tenant"]);
    }

    public static TheoryData<string, string, int, string> OpenAiFailures => new()
    {
        { "wrong", "gpt-4o-mini", 401, "invalid_api_key" },
        { "revoked", "gpt-4o-mini", 401, "invalid_api_key" },
        { "narrow", "gpt-4o", 403, "model_not_allowed" },
        { "acme", "o3-pro", 403, "model_not_allowed" },
    };

    [Theory]
    [MemberData(nameof(OpenAiFailures))]
    public async Task OpenAiSdk_RefusedKey_ClientResultExceptionWithOurCodeAndMessage(string which, string model, int status, string code)
    {
        var error = await Assert.ThrowsAsync<ClientResultException>(() => OpenAi(Key(which), model).CompleteChatAsync("Hi"));

        Assert.Equal(status, error.Status);
        Assert.Contains(code, error.Message, StringComparison.Ordinal);
        Assert.Contains(status == 401 ? "The API key is not valid." : "is not allowed for this tenant", error.Message, StringComparison.Ordinal);
        Assert.Empty(_plane.Upstream);
    }

    [Fact]
    public async Task OpenAiSdk_NoCredentialOnTheWire_401MissingCredentials()
    {
        // The SDK insists on a key; a policy strips the header so the request carries none.
        var options = new OpenAIClientOptions { Endpoint = new Uri(_plane.BaseUrl, "/v1"), RetryPolicy = new ClientRetryPolicy(0) };
        options.AddPolicy(new StripAuthorization(), PipelinePosition.BeforeTransport);
        var client = new ChatClient("gpt-4o-mini", new ApiKeyCredential("unused"), options);

        var error = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync("Hi"));

        Assert.Equal(401, error.Status);
        Assert.Contains("missing_credentials", error.Message, StringComparison.Ordinal);
        Assert.Empty(_plane.Upstream);
    }

    public static TheoryData<string, string, int, string, System.Type> AnthropicFailures => new()
    {
        { "wrong", "claude-sonnet-4-5", 401, "invalid_api_key", typeof(AnthropicUnauthorizedException) },
        { "revoked", "claude-sonnet-4-5", 401, "invalid_api_key", typeof(AnthropicUnauthorizedException) },
        { "narrow", "claude-sonnet-4-5", 403, "model_not_allowed", typeof(AnthropicForbiddenException) },
    };

    [Theory]
    [MemberData(nameof(AnthropicFailures))]
    public async Task AnthropicSdk_RefusedKey_SdkExceptionTypeWithOurCodeAndMessage(string which, string model, int status, string code, System.Type type)
    {
        _ = status; // the SDK's exception type encodes it (401 Unauthorized, 403 Forbidden)
        var error = await Assert.ThrowsAnyAsync<AnthropicServiceException>(() => Anthropic(Key(which)).Messages.Create(Message(model)));

        Assert.IsType(type, error);
        Assert.Equal(code, error.ErrorCode);
        Assert.False(string.IsNullOrEmpty(error.ApiMessage));
        Assert.Empty(_plane.Upstream);
    }

    private static string Key(string which) => which switch
    {
        "acme" => TestTenancy.AcmeKey,
        "narrow" => TestTenancy.AcmeNarrowKey,
        "revoked" => TestTenancy.AcmeRevokedKey,
        _ => TestTenancy.AcmeKey[..^3] + "zzz",
    };

    private sealed class StripAuthorization : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Remove("Authorization");
            ProcessNext(message, pipeline, currentIndex);
        }

        public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Remove("Authorization");
            return ProcessNextAsync(message, pipeline, currentIndex);
        }
    }
}
