using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

/// <summary>The <c>init_lora_weights</c> schemes. RNG parity with PyTorch is not a goal; the distributions are.</summary>
internal static class LoraInit
{
    public static void Initialise(LoraLayer layer, string adapter, string mode, Generator? gen)
    {
        using var noGrad = torch.no_grad();
        var (a, b) = layer.Factors(adapter);
        var s = layer.Settings[adapter];
        if (layer.IsEmbedding)
        {
            // Mirror of the Linear case: A = 0, B ~ N(0, 1) so the adapter starts as a no-op.
            if (mode == "false") { a.normal_(0, 1, gen); b.normal_(0, 1, gen); }
            else { a.zero_(); b.normal_(0, 1, gen); }
            return;
        }
        switch (mode)
        {
            case "true":
                KaimingUniform(a, gen);
                b.zero_();
                break;
            case "gaussian":
                a.normal_(0, 1.0 / s.R, gen);
                b.zero_();
                break;
            case "false":
                KaimingUniform(a, gen);
                KaimingUniform(b, gen);
                break;
            case "olora":
                Olora(layer, adapter);
                break;
            default:
                if (mode == "pissa" || mode.StartsWith("pissa_niter_", StringComparison.Ordinal))
                {
                    int? niter = mode == "pissa" ? null : int.Parse(mode["pissa_niter_".Length..]);
                    Pissa(layer, adapter, niter, gen);
                    break;
                }
                throw new ArgumentException($"unknown init_lora_weights '{mode}'");
        }
        var lb = layer.LoraBBias(adapter);
        lb?.zero_();
    }

    /// <summary>nn.Linear's default: kaiming_uniform(a=√5) = U(−1/√fan_in, 1/√fan_in).</summary>
    private static void KaimingUniform(Tensor w, Generator? gen)
    {
        double bound = 1.0 / Math.Sqrt(w.shape[1]);
        w.uniform_(-bound, bound, gen);
    }

    /// <summary>PiSSA: A, B from the top-r singular triplets of W (split √S across both), W ← W − s·B·A.</summary>
    private static void Pissa(LoraLayer layer, string adapter, int? niter, Generator? gen)
    {
        using var scope = torch.NewDisposeScope();
        var s = layer.Settings[adapter];
        var host = (Nn.LinearLayer)layer.Host;
        var w = host.WeightOutIn().to(ScalarType.Float32);
        int r = s.R;
        Tensor u, sv, vh;
        if (niter is null)
        {
            (u, sv, vh) = torch.linalg.svd(w, fullMatrices: false);
        }
        else
        {
            (u, sv, vh) = RandomizedSvd(w, r, niter.Value, gen);
        }
        var ur = u.narrow(1, 0, r);
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar scaling = s.Scaling;
        var sr = sv.narrow(0, 0, r) / scaling;
        var vhr = vh.narrow(0, 0, r);
        var sqrtS = sr.sqrt();
        var newA = sqrtS.unsqueeze(1) * vhr;        // diag(√S)·Vhᵣ  [r, in]
        var newB = ur * sqrtS.unsqueeze(0);         // Uᵣ·diag(√S)   [out, r]
        var (a, b) = layer.Factors(adapter);
        a.copy_(newA);
        b.copy_(newB);
        SubtractFromBase(host, newB.matmul(newA) * scaling);
    }

    /// <summary>OLoRA: QR of W; A = R[:r], B = Q[:, :r], W ← W − s·B·A.</summary>
    private static void Olora(LoraLayer layer, string adapter)
    {
        using var scope = torch.NewDisposeScope();
        var s = layer.Settings[adapter];
        var host = (Nn.LinearLayer)layer.Host;
        var w = host.WeightOutIn().to(ScalarType.Float32);
        var (q, rm) = torch.linalg.qr(w);
        var newB = q.narrow(1, 0, s.R);
        var newA = rm.narrow(0, 0, s.R);
        var (a, b) = layer.Factors(adapter);
        a.copy_(newA);
        b.copy_(newB);
        using Scalar scaling = s.Scaling;
        SubtractFromBase(host, newB.matmul(newA) * scaling);
    }

    private static void SubtractFromBase(Nn.LinearLayer host, Tensor deltaOutIn)
    {
        var delta = host.FanInFanOut ? deltaOutIn.t() : deltaOutIn;
        host.WriteWeight(host.ReadWeight() - delta);
    }

    /// <summary>Randomised SVD (Halko et al.) with <paramref name="niter"/> power iterations, as torch.svd_lowrank.</summary>
    private static (Tensor U, Tensor S, Tensor Vh) RandomizedSvd(Tensor w, int rank, int niter, Generator? gen)
    {
        long n = w.shape[1];
        var omega = torch.randn([n, rank], ScalarType.Float32, w.device, generator: gen);
        var (q, _) = torch.linalg.qr(w.matmul(omega));
        for (int i = 0; i < niter; i++)
        {
            (q, _) = torch.linalg.qr(w.t().matmul(q));
            (q, _) = torch.linalg.qr(w.matmul(q));
        }
        var (ub, sv, vh) = torch.linalg.svd(q.t().matmul(w), fullMatrices: false);
        return (q.matmul(ub), sv, vh);
    }
}
