using Peft.Tests.Support;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

/// <summary>
/// The decode cache writes each step into spare room under no_grad (no whole-cache copy per step): across its growth
/// points and a row reorder, every step's logits equal a full forward of the whole sequence without a cache.
/// </summary>
public class KvCacheTests
{
    [Theory]
    [InlineData("llama_base")]   // grouped-query attention (4 heads, 2 key/value heads)
    [InlineData("gpt2_base")]
    public void DecodingPastTheGrowthPointsMatchesFullForwards(string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        model.eval();
        using var noGrad = torch.no_grad();
        var rng = new Random(1);
        var rows = new List<long>[] { [5, 9, 3, 7], [11, 2, 4, 6] };
        using var cache = new KvCache(model.NumLayers);
        using (var first = model.Forward(new ForwardArgs { InputIds = torch.tensor(rows.SelectMany(r => r).ToArray()).view(2, 4), Cache = cache })) { }
        for (int step = 1; step <= 140; step++)
        {
            using var stepScope = torch.NewDisposeScope();
            if (step == 70)
            {
                // Beam search reorders rows; the spare room must travel with them.
                cache.IndexSelect(torch.tensor(new long[] { 1, 0 }));
                (rows[0], rows[1]) = (rows[1], rows[0]);
            }
            var next = new long[] { rng.Next(2, 90), rng.Next(2, 90) };
            rows[0].Add(next[0]);
            rows[1].Add(next[1]);
            using var o = model.Forward(new ForwardArgs { InputIds = torch.tensor(next).view(2, 1), Cache = cache });
            Assert.Equal(rows[0].Count, cache.Length);
            if (step is 1 or 2 or 63 or 64 or 65 or 69 or 70 or 71 or 100 or 140)
            {
                using var full = model.Forward(new ForwardArgs { InputIds = torch.tensor(rows.SelectMany(r => r).ToArray()).view(2, rows[0].Count) });
                GoldenData.AssertClose(full.Logits.narrow(1, rows[0].Count - 1, 1), o.Logits, 1e-4, $"step {step}");
            }
        }
    }
}
