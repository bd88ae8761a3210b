using Envoy.Service.ExtProc.V3;
using ExtProc.Tests.Tenancy;
using Google.Protobuf.WellKnownTypes;
using static ExtProc.Tests.Engine.EngineTestKit;
using static ExtProc.Tests.Stages.Auth.AuthenticationStageTests;
using static ExtProc.Tests.Tenancy.TestTenancy;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>mTLS / SPIFFE peer identity from Envoy attributes or XFCC (faults.md A7).</summary>
public sealed class PeerIdentityTests
{
    private const string Mtls = """
        identity:
          mtls:
            source: attributes
            peers:
              - spiffeId: "spiffe://mesh.test/ns/acme/sa/agent"
                tenant: acme
              - spiffePrefix: "spiffe://mesh.test/ns/beta/"
                tenant: beta
              - spiffePrefix: "spiffe://mesh.test/ns/beta/special/"
                tenant: acme
              - subject: "CN=legacy-agent,O=Acme"
                tenant: acme
        """;

    private static readonly global::ExtProc.Pipeline.PipelineSnapshot Attributes = BuildPipeline(BaseYaml(Mtls));

    private static async Task<ProcessingResponse> WithPeerAsync(global::ExtProc.Pipeline.PipelineSnapshot snapshot, string? uri, string? subject = null,
        params (string, string)[] extra)
    {
        var (processor, writer) = Processor(snapshot);
        var message = RequestHeaders("/v1/chat/completions", extra: extra);
        var attributes = new Struct();
        if (uri is not null)
        {
            attributes.Fields["connection.uri_san_peer_certificate"] = Value.ForString(uri);
        }

        if (subject is not null)
        {
            attributes.Fields["connection.subject_peer_certificate"] = Value.ForString(subject);
        }

        attributes.Fields["connection.mtls"] = Value.ForBool(uri is not null || subject is not null);
        message.Attributes["envoy.filters.http.ext_proc"] = attributes;
        await processor.HandleAsync(message);
        return Assert.Single(writer.Responses);
    }

    [Theory]
    [InlineData("spiffe://mesh.test/ns/acme/sa/agent", "acme")]
    [InlineData("spiffe://mesh.test/ns/beta/sa/worker", "beta")]
    [InlineData("spiffe://mesh.test/ns/beta/special/sa/x", "acme")] // longest prefix wins
    public async Task Spiffe_ExactOrLongestPrefix_MapsToTenant(string uri, string tenant)
    {
        var reply = await WithPeerAsync(Attributes, uri);

        Assert.Equal(tenant, Header(reply.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
        Assert.Equal("spiffe", reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["identity"].StringValue);
    }

    [Fact]
    public async Task Subject_ExactMapping_MapsToTenant()
    {
        var reply = await WithPeerAsync(Attributes, uri: null, subject: "CN=legacy-agent,O=Acme");

        Assert.Equal("x509_subject", reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["identity"].StringValue);
    }

    [Theory]
    [InlineData("spiffe://mesh.test/ns/acme/sa/agent\0")]
    [InlineData("spiffe://mesh.test/ns/acme/sa/agent\r\nx: 1")]
    [InlineData("spiffe://mesh.test/ns/beta/\u001b[31m")]
    public async Task A7_ControlCharactersInSan_401InvalidClientIdentity(string uri)
    {
        var reply = await WithPeerAsync(Attributes, uri, extra: ("x-api-key", AcmeKey));

        AssertError(reply, 401, "invalid_client_identity");
    }

    [Fact]
    public async Task A7_SiblingNameOfPrefix_NotMapped()
    {
        var reply = await WithPeerAsync(Attributes, "spiffe://mesh.test/ns/beta-evil/sa/x");

        AssertError(reply, 401, "missing_credentials");
    }

    [Fact]
    public async Task A7_MissingCertificateOnMtlsRequiredConfig_401()
    {
        var snapshot = BuildPipeline(BaseYaml(Mtls.Replace("source: attributes", "required: true\n    source: attributes", StringComparison.Ordinal)));

        var reply = await WithPeerAsync(snapshot, uri: null, extra: ("x-api-key", AcmeKey));

        AssertError(reply, 401, "invalid_client_identity");
    }

    [Fact]
    public async Task PeerAndKeyOfSameTenant_KeyIdentityWins()
    {
        var reply = await WithPeerAsync(Attributes, "spiffe://mesh.test/ns/acme/sa/agent", extra: ("x-api-key", AcmeKey));

        Assert.Equal("api_key", reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["identity"].StringValue);
    }

    [Fact]
    public async Task A1_PeerAndKeyOfDifferentTenants_400Ambiguous()
    {
        var reply = await WithPeerAsync(Attributes, "spiffe://mesh.test/ns/beta/sa/worker", extra: ("x-api-key", AcmeKey));

        AssertError(reply, 400, "ambiguous_credentials");
    }

    [Fact]
    public async Task Xfcc_IgnoredUnlessConfigured()
    {
        var reply = await WithPeerAsync(Attributes, uri: null,
            extra: ("x-forwarded-client-cert", "By=spiffe://mesh.test/gw;URI=spiffe://mesh.test/ns/acme/sa/agent"));

        AssertError(reply, 401, "missing_credentials");
    }

    [Theory]
    [InlineData("By=spiffe://mesh.test/gw;Hash=abc;URI=spiffe://mesh.test/ns/acme/sa/agent", 200)]
    [InlineData("By=x;Subject=\"CN=legacy-agent,O=Acme\";URI=", 200)]
    [InlineData("URI=spiffe://mesh.test/ns/acme/sa/agent,URI=spiffe://mesh.test/ns/beta/sa/w", 401)] // two elements
    [InlineData("URI=spiffe://mesh.test/ns/acme/sa/agent;URI=spiffe://mesh.test/ns/beta/sa/w", 401)] // two SPIFFE ids
    [InlineData("URI=\"spiffe://mesh.test/ns/acme/sa/agent", 401)] // unterminated quote
    public async Task A7_XfccWhenConfigured_ParsedStrictly(string xfcc, int status)
    {
        var snapshot = BuildPipeline(BaseYaml(Mtls.Replace("source: attributes", "source: xfcc", StringComparison.Ordinal)));

        var reply = await WithPeerAsync(snapshot, uri: null, extra: ("x-forwarded-client-cert", xfcc));

        if (status == 200)
        {
            Assert.Equal("acme", Header(reply.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
        }
        else
        {
            AssertError(reply, 401, "invalid_client_identity");
        }
    }
}
